"""Seconds per epoch: vaelab's trainer vs a hand-written PyTorch loop, same network, alternating.

The plain VAE with the paper backbone (seed Fig. 3, 13.2M parameters), batch 100, Adam lr 1e-3,
over the 60,000 MNIST training images. Both loops run in this one process under the same
allocator settings (vaelab's malloc tuning is applied first unless --no-malloc-tuning).
Prints figures; asserts nothing. Run by hand on an otherwise idle machine:

    python benchmarks/epoch_time.py --data-dir $VAELAB_DATA/mnist --rounds 2
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from torch import nn


class HandVAE(nn.Module):
    """The seed's Fig. 3 network written out by hand (no vaelab code)."""

    def __init__(self, d=16):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(1, 64, 4, 2, 1), nn.LeakyReLU(0.1), nn.Conv2d(64, 128, 4, 2, 1), nn.LeakyReLU(0.1),
                                 nn.Flatten(), nn.Linear(6272, 1024), nn.LeakyReLU(0.1), nn.Linear(1024, 2 * d))
        self.dec = nn.Sequential(nn.Linear(d, 1024), nn.ReLU(), nn.Linear(1024, 6272), nn.ReLU(), nn.Unflatten(1, (128, 7, 7)),
                                 nn.ConvTranspose2d(128, 64, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(64, 1, 4, 2, 1))

    def loss(self, x):
        mu, logvar = self.enc(x).chunk(2, 1)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        rec = F.binary_cross_entropy_with_logits(self.dec(z), x, reduction="sum") / x.shape[0]
        kl = 0.5 * (logvar.exp() + mu**2 - 1 - logvar).sum(1).mean()
        return rec + kl


def hand_epoch(x: torch.Tensor, steps: int, seed: int, warm: int = 0) -> float:
    """Seconds of ``steps`` training steps of a fresh model, timed after ``warm`` untimed ones."""
    torch.manual_seed(seed)
    m = HandVAE()
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    perm = torch.randperm(x.shape[0])
    n_batches = x.shape[0] // 100
    t0 = time.perf_counter()
    for i in range(warm + steps):
        if i == warm:
            t0 = time.perf_counter()
        j = i % n_batches
        xb = x[perm[j * 100:(j + 1) * 100]]
        loss = m.loss(xb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def vaelab_epoch(ds, steps: int, seed: int) -> tuple[float, float]:
    """(trainer-reported loop seconds, wall seconds including checkpoint and grids)."""
    import dataclasses
    import json
    from pathlib import Path

    import vaelab
    from vaelab.rundir import build_variant
    from vaelab.training.config import TrainConfig
    from vaelab.training.trainer import Trainer

    sub = dataclasses.replace(ds, images=ds.images[: steps * 100], labels=ds.labels[: steps * 100])
    cfg = TrainConfig(dataset="mnist", epochs=1, batch_size=100, optimizer="adam", seed=seed, eval_every=0, progress=False)
    v = build_variant("vae", {"backbone": "paper"}, seed)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        Trainer(v, cfg, d, sub, None).fit()
        wall = time.perf_counter() - t0
        loop = json.loads((Path(d) / "metrics.jsonl").read_text().splitlines()[0])["seconds"]
    return loop, wall


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds (hand, vaelab) per configuration")
    p.add_argument("--steps", type=int, default=600, help="steps per epoch (600 = the full 60k set)")
    p.add_argument("--no-malloc-tuning", action="store_true")
    a = p.parse_args()
    from vaelab._cpu import tune_malloc
    from vaelab.data import load_dataset, to_tensor

    tuned = False if a.no_malloc_tuning else tune_malloc()
    ds = load_dataset("mnist", "train", a.data_dir)
    x = to_tensor(ds.images)
    hand, loop, wall = [], [], []
    for r in range(a.rounds):
        hand.append(hand_epoch(x, a.steps, r) * 600 / a.steps)
        lo, wa = vaelab_epoch(ds, a.steps, r)
        loop.append(lo * 600 / a.steps)
        wall.append(wa * 600 / a.steps)
        print(f"round {r + 1}: hand {hand[-1]:.1f} s/epoch | vaelab loop {loop[-1]:.1f} s, with checkpoint+grids {wall[-1]:.1f} s", flush=True)
    h, l, w = statistics.median(hand), statistics.median(loop), statistics.median(wall)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, malloc tuning {'on' if tuned else 'off'}")
    print(f"median s/epoch: hand {h:.2f} | vaelab {l:.2f} ({l / h:.3f}x) | vaelab incl. checkpoint {w:.2f} ({w / h:.3f}x)")


if __name__ == "__main__":
    main()
