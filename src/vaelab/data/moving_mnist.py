"""Moving MNIST, generated deterministically from MNIST digits (Srivastava et al. 2015's construction).

A sequence is T frames (default 8) of 64×64 pixels in which one 28×28 MNIST digit (two with
``n_digits=2``) moves in a straight line and bounces off the borders. The rules:

* **Digits.** Training sequences use training digits, test sequences test digits: sequence i takes
  digit ``order[i mod n]`` of a seeded permutation of the split's digits.
* **Start.** The digit's top-left corner is uniform over the integer positions that keep it inside
  the frame: x, y ∈ {0, …, 36}.
* **Motion.** One of 8 directions — k·45° for k = 0…7, counter-clockwise from "right" as displayed
  (k = 0 right, 2 up, 4 left, 6 down) — with a per-frame step of s pixels along each moving axis,
  s ∈ SPEEDS = {2, 3, 4}: velocity (s·cx_k, s·cy_k) with cx, cy ∈ {−1, 0, 1}, uniform over the 24
  (direction, speed) pairs. Frame t+1 is frame t moved by the velocity; a coordinate that would leave
  {0, …, 36} is reflected back into it and that velocity component flips (the bounce).
* **Labels.** ``labels``: the digit's class (for two digits: 10·first + second). Factors kept beside
  it: ``motion`` (the direction k of the first digit at frame 1, before any bounce, 0…7), ``speed``,
  and ``step_directions`` (N, T−1): the direction class of each frame-to-frame move of the first digit
  from the signs of its displacement (after bounces; −1 where it did not move).
* **Two digits.** Each has its own digit, start and motion; pixels combine by max.

Sizes and seeds (``SPECS``): ``moving-mnist`` draws 10,000 training sequences from the 60,000 MNIST
training digits and 2,000 test sequences from the 10,000 test digits; ``moving-mnist-5k`` draws 4,000
and 1,000 from the embedded mnist-5k subset. Generation is vectorised over sequences (a loop over T
only) and reproducible bit for bit from the digits and the seed, so nothing is cached.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME = 64
DIGIT = 28
SPEEDS = (2, 3, 4)
#: (cx, cy) of direction k (k·45°, counter-clockwise, y pointing up on screen; image rows run down)
DIRECTIONS = ((1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1))
N_MOTIONS = len(DIRECTIONS)
#: [sign of the x move + 1, sign of the upward move + 1] → direction class (−1 for no move)
SIGN_CLASS = np.full((3, 3), -1, dtype=np.int64)
for _k, (_cx, _cy) in enumerate(DIRECTIONS):
    SIGN_CLASS[_cx + 1, _cy + 1] = _k


@dataclass(frozen=True)
class Spec:
    """How one Moving-MNIST dataset is generated from its source digits."""

    source: str  # the MNIST dataset the digits come from
    n_train: int
    n_test: int
    frames: int = 8
    n_digits: int = 1
    seed: int = 2015


SPECS = {
    "moving-mnist": Spec("mnist", 10_000, 2_000),
    "moving-mnist-5k": Spec("mnist-5k", 4_000, 1_000),
}


def generate(digits: np.ndarray, digit_labels: np.ndarray, n: int, frames: int = 8, n_digits: int = 1,
             seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """``n`` sequences from ``digits`` (M, 28, 28) uint8 with their labels (M,).

    Returns (sequences uint8 (n, frames, 1, 64, 64), content labels (n,),
    {"motion": (n,), "speed": (n,), "step_directions": (n, frames − 1), "positions": (n, frames, 2)}),
    positions being the (x, y) of the first digit's top-left corner in every frame."""
    if digits.ndim != 3 or digits.shape[1:] != (DIGIT, DIGIT):
        raise ValueError(f"digits must be (M, {DIGIT}, {DIGIT}), got {digits.shape}")
    rng = np.random.default_rng(seed)
    m = digits.shape[0]
    order = rng.permutation(m)
    out = np.zeros((n, frames, FRAME, FRAME), dtype=np.uint8)
    span = FRAME - DIGIT  # positions 0..span
    labels = np.zeros(n, dtype=np.int64)
    motion = speed = None
    steps = np.full((n, max(frames - 1, 0)), -1, dtype=np.int64)
    positions = np.zeros((n, frames, 2), dtype=np.int64)
    rows_n = np.arange(n)[:, None, None]
    offs = np.arange(DIGIT)
    for j in range(n_digits):
        pick = order[(np.arange(n) * n_digits + j) % m]
        d = digits[pick]  # (n, 28, 28)
        labels = labels * 10 + digit_labels[pick].astype(np.int64)
        k = rng.integers(0, N_MOTIONS, n)
        s = np.asarray(SPEEDS)[rng.integers(0, len(SPEEDS), n)]
        pos = rng.integers(0, span + 1, (n, 2))  # (x, y) of the top-left corner
        vel = np.stack([np.asarray(DIRECTIONS)[k, 0] * s, -np.asarray(DIRECTIONS)[k, 1] * s], 1)  # rows run down
        if j == 0:
            motion, speed = k.astype(np.int64), s.astype(np.int64)
        for t in range(frames):
            if t > 0:
                prev, pos = pos, pos + vel
                low, high = pos < 0, pos > span
                pos = np.where(low, -pos, np.where(high, 2 * span - pos, pos))
                vel = np.where(low | high, -vel, vel)
                if j == 0:
                    moved = pos - prev
                    steps[:, t - 1] = SIGN_CLASS[np.sign(moved[:, 0]) + 1, np.sign(-moved[:, 1]) + 1]
            if j == 0:
                positions[:, t] = pos
            r = pos[:, 1, None, None] + offs[None, :, None]
            c = pos[:, 0, None, None] + offs[None, None, :]
            frame = out[:, t]
            frame[rows_n, r, c] = np.maximum(frame[rows_n, r, c], d)
    return out[:, :, None], labels, {"motion": motion, "speed": speed, "step_directions": steps, "positions": positions}


def load(name: str, split: str, digits: np.ndarray, digit_labels: np.ndarray, n: int | None = None):
    """(sequences, labels, factors, number of content classes) of split ``split`` of ``name`` from
    its source split's digits (M, 1, 28, 28). ``n``: that many sequences by the same rules and seed
    instead of the spec's count (the judge's larger training set; see vaelab.reference_classifier)."""
    spec = SPECS[name]
    if n is None:
        n = spec.n_train if split == "train" else spec.n_test
    seq, labels, factors = generate(digits[:, 0], digit_labels, n, spec.frames, spec.n_digits,
                                    spec.seed + (0 if split == "train" else 1))
    return seq, labels, factors, 10 ** spec.n_digits
