"""Moving MNIST: a deterministic, vectorised generator of bouncing-digit sequences with their labels."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from vaelab.data import load_dataset, moving_mnist as mm


def _digits(n=50, seed=0):
    rng = np.random.default_rng(seed)
    d = np.zeros((n, 28, 28), np.uint8)
    d[:, 6:22, 8:20] = rng.integers(1, 256, (n, 16, 12), dtype=np.uint8)  # ink inside a 16×12 box
    return d, np.arange(n) % 10


def test_generation_is_deterministic_and_keeps_every_digit_whole():
    d, y = _digits()
    a = mm.generate(d, y, 300, frames=8, seed=3)
    b = mm.generate(d, y, 300, frames=8, seed=3)
    assert all(np.array_equal(p, q) for p, q in ((a[0], b[0]), (a[1], b[1]), (a[2]["motion"], b[2]["motion"])))
    seq, labels, f = a
    assert seq.shape == (300, 8, 1, 64, 64) and seq.dtype == np.uint8
    # the digit never leaves the frame (bounces): every frame holds exactly the digit's ink
    ink = seq.reshape(300, 8, -1).astype(np.int64).sum(-1)
    pick = np.random.default_rng(3).permutation(50)[np.arange(300) % 50]  # the documented digit order
    src = d[pick]
    assert np.array_equal(ink, np.repeat(src.reshape(300, -1).astype(np.int64).sum(-1)[:, None], 8, 1))
    assert np.array_equal(labels, y[pick])
    assert set(np.unique(f["speed"])) <= set(mm.SPEEDS) and set(np.unique(f["motion"])) == set(range(8))


def _centre(frame):
    w = frame.astype(np.float64)
    r, c = np.mgrid[:64, :64]
    return (w * c).sum() / w.sum(), (w * r).sum() / w.sum()


def test_first_step_moves_along_the_labelled_direction_and_speed():
    d, y = _digits()
    seq, _, f = mm.generate(d, y, 400, frames=2, seed=1)
    checked = 0
    for i in range(400):
        (x0, y0), (x1, y1) = _centre(seq[i, 0, 0]), _centre(seq[i, 1, 0])
        cx, cy = mm.DIRECTIONS[f["motion"][i]]
        s = f["speed"][i]
        # a bounce flips the step; the displacement is s or the reflected remainder, with the sign of the direction
        if abs(x1 - x0 - cx * s) < 1e-6 and abs(y0 - y1 - cy * s) < 1e-6:  # up on screen = rows decrease
            checked += 1
    assert checked > 300  # all but those that bounced on the first step


def test_motion_classes_are_uniform():
    d, y = _digits()
    _, _, f = mm.generate(d, y, 8000, frames=2, seed=2)
    counts = np.bincount(f["motion"], minlength=8)
    assert counts.min() > 900 and counts.max() < 1100  # 1000 ± 3.4 sd


def test_two_digits_label_both():
    d, y = _digits()
    seq, labels, _ = mm.generate(d, y, 20, n_digits=2, seed=0)
    assert labels.max() < 100 and seq.shape == (20, 8, 1, 64, 64)


def test_moving_mnist_5k_splits_and_hash():
    tr, te = load_dataset("moving-mnist-5k", "train"), load_dataset("moving-mnist-5k", "test")
    assert tr.images.shape == (4000, 8, 1, 64, 64) and te.images.shape == (1000, 8, 1, 64, 64)
    assert tr.is_sequence and tr.shape == (8, 1, 64, 64) and tr.n_classes == 10
    assert set(tr.factors) == {"motion", "speed", "step_directions", "positions"} and tr.factors["motion"].shape == (4000,)
    assert tr.factors["positions"].shape == (4000, 8, 2)
    assert hashlib.sha256(tr.images.tobytes()).hexdigest()[:16] == "8326977f61b82dbd"
    # test sequences are made of test digits: each sequence's ink is that of a test digit
    ink = lambda a: set(a.reshape(a.shape[0], -1).astype(np.int64).sum(-1).tolist())  # noqa: E731
    assert ink(te.images[:, 0]) <= ink(load_dataset("mnist-5k", "test").images)
    assert ink(tr.images[:, 0]) <= ink(load_dataset("mnist-5k", "train").images)


@pytest.mark.parametrize("bad", ["moving-mnist-9k"])
def test_unknown_sequence_dataset_is_refused(bad):
    from vaelab.errors import ConfigError

    with pytest.raises(ConfigError, match="moving-mnist-5k"):
        load_dataset(bad, "train")


def test_a_larger_set_follows_the_same_rules_from_the_same_digits():
    """``sequences=N`` (the judge's training set): N sequences from the split's own digits, N = M uses
    every digit exactly once, in the same seeded digit order; an image dataset refuses it."""
    from vaelab.errors import ConfigError

    src = load_dataset("mnist-5k", "train")
    big = load_dataset("moving-mnist-5k", "train", sequences=len(src))
    assert big.images.shape == (len(src), 8, 1, 64, 64) and big.factors["motion"].shape == (len(src),)
    # every training digit once: the class counts equal the source's, and every sequence's ink is a training digit's
    assert np.array_equal(np.bincount(big.labels, minlength=10), np.bincount(src.labels, minlength=10))
    ink = lambda a: a.reshape(a.shape[0], -1).astype(np.int64).sum(-1)  # noqa: E731
    assert sorted(ink(big.images[:, 0]).tolist()) == sorted(ink(src.images).tolist())
    small = load_dataset("moving-mnist-5k", "train", sequences=50)
    assert small.images.shape[0] == 50 and np.array_equal(small.labels, big.labels[:50])  # the same seeded digit order
    with pytest.raises(ConfigError, match="sequences: mnist-5k is not a sequence dataset"):
        load_dataset("mnist-5k", "train", sequences=10)


def test_the_judge_trains_on_its_recipes_sequence_count(tmp_path, monkeypatch):
    from vaelab import reference_classifier as C

    monkeypatch.setenv("VAELAB_CACHE", str(tmp_path))
    monkeypatch.setitem(C.RECIPES, "moving-mnist-5k", C.Recipe(epochs=1, batch_size=32, shift=0, sequences=64))
    judge = C.load_or_train("moving-mnist-5k")
    assert judge.meta["n_train"] == 64 and judge.meta["recipe"]["sequences"] == 64 and judge.meta["n_test"] == 1000
    assert "sequences" not in C.Recipe().to_dict()  # unused, it stays out: the image classifiers' cached records still match
