"""The cost of the sequence datasets and models: generating Moving MNIST, and seconds per epoch of
S3VAE and DSVAE.

* **Generation.** Each split of ``moving-mnist-5k`` and ``moving-mnist`` is generated from its
  source digits (loaded first, untimed), ``--rounds`` times; the median seconds and sequences/s.
* **Training.** ``--steps`` updates of the trainer (batch ``--batch-size``, Adam, default configs)
  on the first ``steps × batch`` training sequences, timed by the trainer itself (its loop seconds in
  metrics.jsonl, without the test pass, the checkpoint and the pictures) and scaled to a whole epoch
  of the dataset.

Prints figures; asserts nothing. Run by hand on an otherwise idle machine (``moving-mnist`` needs
the MNIST IDX files: ``--data-dir`` or ``$VAELAB_DATA/mnist``):

    python benchmarks/sequences.py --data-dir $VAELAB_DATA/mnist
    python benchmarks/sequences.py --skip-generation --datasets moving-mnist --backbones dcgan,dcgan-bn32,dcgan-bn --precision bf16
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch


def generation_seconds(name: str, split: str, data_dir: str | None, rounds: int) -> tuple[float, int]:
    """(median seconds to generate one split from its loaded source digits, number of sequences)."""
    from vaelab.data import load_dataset, moving_mnist

    spec = moving_mnist.SPECS[name]
    src = load_dataset(spec.source, split, data_dir)
    times, n = [], 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        seq, *_ = moving_mnist.load(name, split, src.images, src.labels)
        times.append(time.perf_counter() - t0)
        n = len(seq)
    return statistics.median(times), n


def epoch_seconds(variant: str, name: str, data_dir: str | None, steps: int, batch: int, seed: int,
                  backbone: str | None = None, precision: str = "fp32") -> tuple[float, int]:
    """(seconds per whole training epoch of ``name``, extrapolated from ``steps`` timed updates; epoch size)."""
    from vaelab.data import load_dataset
    from vaelab.rundir import build_variant
    from vaelab.training.config import TrainConfig
    from vaelab.training.trainer import Trainer

    ds = load_dataset(name, "train", data_dir)
    sub = dataclasses.replace(ds, images=ds.images[: steps * batch], labels=ds.labels[: steps * batch])
    cfg = TrainConfig(dataset=name, epochs=1, batch_size=batch, optimizer="adam", seed=seed, eval_every=0, progress=False,
                      precision=precision)
    model = {"data_shape": tuple(ds.images.shape[1:]), **({"backbone": backbone} if backbone else {})}
    v = build_variant(variant, model, seed)
    with tempfile.TemporaryDirectory() as d:
        Trainer(v, cfg, d, sub, None).fit()
        loop = json.loads((Path(d) / "metrics.jsonl").read_text().splitlines()[0])["seconds"]
    return loop * (len(ds.images) / batch) / steps, len(ds.images)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="the MNIST IDX files (for moving-mnist)")
    p.add_argument("--datasets", default="moving-mnist-5k,moving-mnist")
    p.add_argument("--variants", default="s3vae,dsvae")
    p.add_argument("--rounds", type=int, default=3, help="generation repeats (median)")
    p.add_argument("--steps", type=int, default=40, help="timed training updates per variant")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backbones", default="", help="comma list of frame networks to time (default: the variants' own)")
    p.add_argument("--precision", default="fp32", help="fp32 | bf16")
    p.add_argument("--skip-generation", action="store_true")
    a = p.parse_args()
    from vaelab._cpu import tune_malloc

    tune_malloc()
    names = [s for s in a.datasets.split(",") if s]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in [] if a.skip_generation else names:
        for split in ("train", "test"):
            s, n = generation_seconds(name, split, a.data_dir, a.rounds)
            print(f"generate {name} {split}: {n} sequences in {s:.2f} s ({n / s:,.0f} sequences/s)", flush=True)
    for name in names:
        for variant in [v for v in a.variants.split(",") if v]:
            for backbone in [b for b in a.backbones.split(",") if b] or [None]:
                s, n = epoch_seconds(variant, name, a.data_dir, a.steps, a.batch_size, a.seed, backbone, a.precision)
                print(f"train {variant} ({backbone or 'default'} frames, {a.precision}) on {name}: {s:.1f} s per epoch of "
                      f"{n} sequences at batch {a.batch_size} ({n / s:.0f} sequences/s; from {a.steps} updates)", flush=True)


if __name__ == "__main__":
    main()
