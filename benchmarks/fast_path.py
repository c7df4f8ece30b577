"""Fast-path benchmark: seconds per epoch of the plain VAE (paper backbone, batch 100, Adam) on full
MNIST in several configurations, each in its own fresh process (alternating precisions inside one
process slows both), plus the quality check fp32 vs bf16 after 10 epochs with the same seed.

    python benchmarks/fast_path.py speed --data-dir ../shared/data/mnist [--steps 200] [--warm-epochs 5] [--repeats 2]
    python benchmarks/fast_path.py quality --data-dir ../shared/data/mnist [--epochs 10]

Configurations (speed):
  fp32-naive        hand-written loop, fresh process, glibc malloc untouched, foreach Adam
  fp32-vaelab       vaelab trainer defaults (malloc tuning, fused Adam, subnormals flushed)
  fp32-vaelab-subnormal  the same with VAELAB_FLUSH_DENORMAL=0
  fp32-vaelab-plain vaelab trainer with --no-fused
  bf16-vaelab       --precision bf16
  bf16-vaelab-cl    --precision bf16 --channels-last
  bf16-vaelab-compile --precision bf16 --compile (compile time excluded: the first epochs are a warm-up)
  bf16-vaelab-cl-compile --precision bf16 --channels-last --compile
Each vaelab configuration trains ``--warm-epochs`` epochs of ``--steps`` steps first and times the
next one: subnormal Adam moments (see ``vaelab._cpu``) only appear after about 800 steps, and a
shorter warm-up would miss what they cost. The vaelab configurations also print the share of the
time spent in the (fp32) optimizer steps, which no precision setting shortens: with share o of the
fp32 step, bf16 can at most reach 1/o×.
Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {
    "fp32-naive": None,
    "fp32-vaelab": {},
    "fp32-vaelab-subnormal": {},
    "fp32-vaelab-plain": {"fused": False},
    "bf16-vaelab": {"precision": "bf16"},
    "bf16-vaelab-cl": {"precision": "bf16", "channels_last": True},
    "bf16-vaelab-compile": {"precision": "bf16", "compile": True},
    "bf16-vaelab-cl-compile": {"precision": "bf16", "channels_last": True, "compile": True},
}


def worker(config: str, steps: int, data_dir: str | None, warm_epochs: int = 5) -> dict:
    import dataclasses

    import torch

    from vaelab.data import load_dataset, to_tensor

    ds = load_dataset("mnist", "train", data_dir)
    if CONFIGS[config] is None:
        sys.path.insert(0, str(Path(__file__).parent))
        from epoch_time import hand_epoch

        sec = hand_epoch(to_tensor(ds.images), steps, 0, warm=warm_epochs * steps)
        return {"config": config, "s_per_epoch": sec * 600 / steps, "threads": torch.get_num_threads()}
    from vaelab.training.trainer import TrainConfig, Trainer, build_variant

    # time the optimizer steps (fp32 state and update in every configuration): the part of a step
    # that bf16 autocast cannot speed up
    opt_seconds = [0.0]
    real_step = torch.optim.Adam.step

    def timed_step(self, *args, **kw):
        t = time.perf_counter()
        try:
            return real_step(self, *args, **kw)
        finally:
            opt_seconds[0] += time.perf_counter() - t
    torch.optim.Adam.step = timed_step
    sub = dataclasses.replace(ds, images=ds.images[: steps * 100], labels=ds.labels[: steps * 100])
    cfg = TrainConfig(dataset="mnist", epochs=warm_epochs + 1, optimizer="adam", eval_every=0, progress=False, **CONFIGS[config])
    v = build_variant("vae", {"backbone": "paper"}, 0)
    with tempfile.TemporaryDirectory() as d:
        Trainer(v, cfg, d, sub, None).fit()
        recs = [json.loads(l) for l in (Path(d) / "metrics.jsonl").read_text().splitlines()]
    total = sum(r["seconds"] for r in recs)  # the optimizer share is over all epochs
    return {"config": config, "s_per_epoch": recs[-1]["seconds"] * 600 / steps, "first_epoch_s": recs[0]["seconds"] * 600 / steps,
            "optimizer_share": opt_seconds[0] / total, "threads": torch.get_num_threads()}


def speed(a) -> None:
    results: dict[str, list[float]] = {c: [] for c in a.configs}
    for r in range(a.repeats):
        for c in a.configs:
            env = dict(os.environ)
            if c == "fp32-vaelab-subnormal":
                env["VAELAB_FLUSH_DENORMAL"] = "0"
            if c == "fp32-naive":
                env["VAELAB_MALLOC_TUNING"] = "0"
                env["VAELAB_FLUSH_DENORMAL"] = "0"
                env.pop("MALLOC_MMAP_THRESHOLD_", None)
                env.pop("MALLOC_TRIM_THRESHOLD_", None)
            cmd = [sys.executable, __file__, "worker", c, "--steps", str(a.steps), "--warm-epochs", str(a.warm_epochs)] + (["--data-dir", a.data_dir] if a.data_dir else [])
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout.strip().splitlines()[-1]
            res = json.loads(out)
            results[c].append(res["s_per_epoch"])
            share = f" ({res['optimizer_share']:.0%} in optimizer steps)" if "optimizer_share" in res else ""
            print(f"repeat {r + 1} {c:22s} {res['s_per_epoch']:7.2f} s/epoch{share}", flush=True)
    base = statistics.median(results["fp32-naive"]) if "fp32-naive" in results else None
    v32 = statistics.median(results["fp32-vaelab"]) if "fp32-vaelab" in results else None
    print("\nmedian seconds per 60k-image epoch (extrapolated from", a.steps, "steps)")
    for c, xs in results.items():
        m = statistics.median(xs)
        rel = f" | {base / m:.2f}x vs fp32-naive" if base else ""
        rel += f" | {v32 / m:.2f}x vs fp32-vaelab" if v32 else ""
        print(f"  {c:22s} {m:7.2f}{rel}")


def quality(a) -> None:
    import vaelab
    from vaelab.training.trainer import TrainConfig

    out = Path(a.out)
    for prec in ("fp32", "bf16"):
        run = out / f"vae-paper-{prec}"
        if not (run / "checkpoint.json").exists():
            t0 = time.time()
            vaelab.train("vae", {"backbone": "paper"}, TrainConfig(dataset="mnist", data_dir=a.data_dir, epochs=a.epochs,
                                                                   optimizer="adam", precision=prec, progress=False), run)
            print(f"{prec}: trained in {time.time() - t0:.0f} s", flush=True)
        elif not json.loads((run / "checkpoint.json").read_text())["done"]:
            vaelab.train(None, resume=True, run_dir=run)
        last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
        line = f"{prec}: test -ELBO {last['test']['loss']:.2f} nats, median s/epoch " \
               f"{statistics.median(json.loads(l)['seconds'] for l in (run / 'metrics.jsonl').read_text().splitlines()):.1f}"
        try:
            from vaelab.metrics import evaluate_run

            ev = evaluate_run(run, n_samples=2000, iwae_k=0, iwae_n=0, data_dir=a.data_dir)
            line += f", recon accuracy {ev['recon_accuracy']:.4f}"
        except ImportError:
            pass
        print(line, flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--data-dir", default=None)
    s.add_argument("--steps", type=int, default=600, help="steps per measured epoch (600 = all 60k images)")
    s.add_argument("--warm-epochs", type=int, default=5, help="untimed epochs before the timed one (vaelab configurations)")
    s.add_argument("--repeats", type=int, default=1)
    s.add_argument("--configs", type=lambda t: t.split(","), default=list(CONFIGS))
    q = sub.add_parser("quality")
    q.add_argument("--data-dir", default=None)
    q.add_argument("--epochs", type=int, default=10)
    q.add_argument("--out", default="runs/fast_path")
    w = sub.add_parser("worker")
    w.add_argument("config", choices=list(CONFIGS))
    w.add_argument("--steps", type=int, default=600)
    w.add_argument("--data-dir", default=None)
    w.add_argument("--warm-epochs", type=int, default=5)
    a = p.parse_args()
    if a.cmd == "worker":
        print(json.dumps(worker(a.config, a.steps, a.data_dir, a.warm_epochs)))
    elif a.cmd == "speed":
        speed(a)
    else:
        quality(a)


if __name__ == "__main__":
    main()
