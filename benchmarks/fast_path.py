"""Fast-path benchmark: seconds per epoch of the plain VAE (paper backbone, batch 100, Adam) on full
MNIST in several configurations, each in its own fresh process (alternating precisions inside one
process slows both), plus the quality check fp32 vs bf16 after 10 epochs with the same seed.

    python benchmarks/fast_path.py speed --data-dir $VAELAB_DATA/mnist [--steps 200] [--warm-epochs 5] [--repeats 2]
    python benchmarks/fast_path.py quality --data-dir $VAELAB_DATA/mnist [--epochs 10] [--seeds 0,1,2] [--precisions fp32,bf16] [--out DIR]
    python benchmarks/fast_path.py ceiling --data-dir $VAELAB_DATA/mnist [--steps 300] [--warm 900]
    python benchmarks/fast_path.py profile --data-dir $VAELAB_DATA/mnist [--config bf16-cl] [--steps 50] [--warm 900]

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
``ceiling`` bounds what any trainer can reach on this machine: for fp32, bf16 and bf16 + channels-last
(each in a fresh process, vaelab's process tuning on, fused Adam) it times the bare step of the same
network split into forward+backward and optimizer (median ms over ``--steps`` steps after ``--warm``
untimed ones), plus the FC layer's matmul in both precisions. The bare steps' ratio is the most the
bf16 path can gain over fp32 with no data handling, metrics or bookkeeping at all.
``profile`` runs the bare step of one ceiling configuration under ``torch.profiler`` (after ``--warm``
untimed steps) and prints where its time goes, op by op and grouped (convolutions, transposed
convolutions, matmuls, optimizer, the rest), with the step's FLOPs as the profiler counts them and this
machine's floor: those FLOPs at the FC matmul's measured GFLOP/s in the same precision, per 600-step
epoch.
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
    from vaelab.rundir import build_variant
    from vaelab.training.config import TrainConfig
    from vaelab.training.trainer import Trainer

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


CEILING = {"fp32": {}, "bf16": {"precision": "bf16"}, "bf16-cl": {"precision": "bf16", "channels_last": True}}


def fc_matmul_gflops(prec: str) -> float:
    """GFLOP/s of the FC layer's matmul (batch 100, 6272 -> 1024), forward only, in ``prec``."""
    import torch

    a = torch.randn(100, 6272)
    w = torch.randn(1024, 6272)
    if prec == "bf16":
        a, w = a.bfloat16(), w.bfloat16()
    for _ in range(20):
        a @ w.T
    t0 = time.perf_counter()
    for _ in range(200):
        a @ w.T
    return 2 * 100 * 6272 * 1024 * 200 / (time.perf_counter() - t0) / 1e9


def ceiling_worker(config: str, steps: int, warm: int, data_dir: str | None) -> dict:
    import torch

    from vaelab._cpu import tune_process
    from vaelab.data import load_dataset, to_tensor
    from vaelab.rundir import build_variant
    from vaelab.training.config import autocast

    tune_process()
    opts = CEILING[config]
    prec = opts.get("precision", "fp32")
    x = to_tensor(load_dataset("mnist", "train", data_dir).images)
    v = build_variant("vae", {"backbone": "paper"}, 0).train()
    if opts.get("channels_last"):
        v.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(v.parameters(), 1e-3, fused=True)
    g = torch.Generator().manual_seed(0)
    fb, op = [], []
    for i in range(warm + steps):
        j = torch.randint(0, x.shape[0], (100,), generator=g)
        batch = {"x": torch.bernoulli(x[j], generator=g)}
        t0 = time.perf_counter()
        with autocast(prec):
            total, _ = v.loss(batch, i)
        opt.zero_grad(set_to_none=True)
        total.backward()
        t1 = time.perf_counter()
        opt.step()
        t2 = time.perf_counter()
        if i >= warm:
            fb.append((t1 - t0) * 1e3)
            op.append((t2 - t1) * 1e3)
    gflops = fc_matmul_gflops(prec)
    return {"config": config, "fwd_bwd_ms": statistics.median(fb), "opt_ms": statistics.median(op),
            "step_ms": statistics.median([a + b for a, b in zip(fb, op)]), "fc_gflops": gflops, "threads": torch.get_num_threads()}


def profile(a) -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile as torch_profile

    from vaelab._cpu import tune_process
    from vaelab.data import load_dataset, to_tensor
    from vaelab.rundir import build_variant
    from vaelab.training.config import autocast

    tune_process()
    opts = CEILING[a.config]
    prec = opts.get("precision", "fp32")
    x = to_tensor(load_dataset("mnist", "train", a.data_dir).images)
    v = build_variant("vae", {"backbone": "paper"}, 0).train()
    if opts.get("channels_last"):
        v.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(v.parameters(), 1e-3, fused=True)
    g = torch.Generator().manual_seed(0)

    def step(i):
        j = torch.randint(0, x.shape[0], (100,), generator=g)
        batch = {"x": torch.bernoulli(x[j], generator=g)}
        if opts.get("channels_last"):
            batch["x"] = batch["x"].contiguous(memory_format=torch.channels_last)
        with autocast(prec):
            total, _ = v.loss(batch, i)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()

    for i in range(a.warm):
        step(i)
    t0 = time.perf_counter()
    with torch_profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        for i in range(a.steps):
            step(a.warm + i)
    wall_ms = (time.perf_counter() - t0) * 1e3 / a.steps
    events = prof.key_averages()
    groups = {"convolution": ("convolution", "conv2d", "mkldnn_convolution"), "transposed convolution": ("conv_transpose",),
              "matmul": ("addmm", "mm", "linear", "matmul"), "optimizer": ("_fused_adam", "adam")}
    own = {k: 0.0 for k in (*groups, "other")}
    flops = 0
    rows = []
    for e in events:
        self_ms = e.self_cpu_time_total / 1e3 / a.steps
        flops += e.flops or 0
        rows.append((self_ms, e.key))
        name = e.key.lower()
        hit = next((k for k, keys in groups.items() if any(s in name for s in keys)), "other")
        if hit == "convolution" and "transpose" in name:
            hit = "transposed convolution"
        own[hit] += self_ms
    gflops = fc_matmul_gflops(prec)  # the machine's attainable GEMM rate in this precision
    step_gflop = flops / a.steps / 1e9
    floor_ms = step_gflop / gflops * 1e3
    print(f"{a.config}: {wall_ms:.1f} ms per step under the profiler ({torch.get_num_threads()} threads); "
          f"{step_gflop:.1f} GFLOP per step counted; FC matmul {gflops:.0f} GFLOP/s")
    print(f"floor: {floor_ms:.1f} ms per step = {floor_ms * 600 / 1e3:.1f} s per 600-step epoch; now "
          f"{wall_ms * 600 / 1e3:.1f} s ({wall_ms / floor_ms:.1f}x the floor)")
    print("self CPU time per step, grouped:")
    for k, ms in sorted(own.items(), key=lambda kv: -kv[1]):
        print(f"  {k:24s} {ms:7.2f} ms")
    print("top ops (self CPU ms per step):")
    for ms, key in sorted(rows, reverse=True)[:15]:
        print(f"  {ms:7.2f}  {key}")


def ceiling(a) -> None:
    res = {}
    for r in range(a.repeats):
        for c in CEILING:
            cmd = [sys.executable, __file__, "ceiling-worker", c, "--steps", str(a.steps), "--warm", str(a.warm)] + (["--data-dir", a.data_dir] if a.data_dir else [])
            out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
            print(f"repeat {r + 1} {c:8s} step {out['step_ms']:6.1f} ms = forward+backward {out['fwd_bwd_ms']:6.1f} + optimizer "
                  f"{out['opt_ms']:5.1f}; FC matmul {out['fc_gflops']:5.0f} GFLOP/s", flush=True)
            if c not in res or out["step_ms"] < res[c]["step_ms"]:
                res[c] = out
    f32 = res["fp32"]
    print("\nbest of repeats; ratios over fp32 (the most a bf16 trainer can gain here):")
    for c in ("bf16", "bf16-cl"):
        b = res[c]
        print(f"  {c:8s} whole step {f32['step_ms'] / b['step_ms']:.2f}x | forward+backward {f32['fwd_bwd_ms'] / b['fwd_bwd_ms']:.2f}x"
              f" | FC matmul {b['fc_gflops'] / f32['fc_gflops']:.2f}x")


def quality(a) -> None:
    """Train (or resume) the VAE on the paper backbone for ``--epochs`` epochs per seed and precision,
    print test -ELBO and recon accuracy, and with ``--results FILE.json`` write every run's record (and
    FILE.md: the table, the mean over seeds and bf16 - fp32 per seed)."""
    import vaelab
    from vaelab.provenance import environment
    from vaelab.rundir import evaluate_run, run_config
    from vaelab.training.config import TrainConfig

    out = Path(a.out)
    records = []
    for seed, prec in ((seed, prec) for seed in a.seeds for prec in a.precisions):
        run = out / (f"vae-paper-{prec}" if seed == 0 else f"vae-paper-{prec}-s{seed}")
        if not (run / "checkpoint.json").exists():
            t0 = time.time()
            vaelab.train("vae", {"backbone": "paper"}, TrainConfig(dataset="mnist", data_dir=a.data_dir, epochs=a.epochs, seed=seed,
                                                                   optimizer="adam", precision=prec, progress=False), run)
            print(f"{prec}: trained in {time.time() - t0:.0f} s", flush=True)
        elif not json.loads((run / "checkpoint.json").read_text())["done"]:
            vaelab.train(None, resume=True, run_dir=run)
        recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        ev = json.loads((run / "eval.json").read_text()) if (run / "eval.json").exists() else \
            evaluate_run(run, n_samples=2000, iwae_k=0, iwae_n=0, data_dir=a.data_dir)
        rec = {"variant": "vae", "seed": seed, "precision": prec, "config": run_config(run)["train"],
               "model": run_config(run)["model"],
               "metrics": {"test_neg_elbo": recs[-1]["test"]["loss"], "recon_accuracy": ev["recon_accuracy"],
                           "median_s_per_epoch": statistics.median(r["seconds"] for r in recs)},
               "command": f"python benchmarks/fast_path.py quality --data-dir DIR --epochs {a.epochs} --seeds {seed} "
                          f"--precisions {prec}", "run_dir": str(run)}
        records.append(rec)
        print(f"seed {seed} {prec}: test -ELBO {rec['metrics']['test_neg_elbo']:.2f} nats, median s/epoch "
              f"{rec['metrics']['median_s_per_epoch']:.1f}, recon accuracy {rec['metrics']['recon_accuracy']:.4f}", flush=True)
    if a.results:
        env = environment()
        doc = {"study": "fp32 vs bf16 quality of the paper-backbone VAE", "environment": env, "runs": records}
        Path(a.results).write_text(json.dumps(doc, indent=2, default=str) + "\n")
        by = {(r["seed"], r["precision"]): r["metrics"] for r in records}
        lines = [f"# fp32 vs bf16: the paper-backbone VAE after {a.epochs} epochs on MNIST", "",
                 f"CPU: {env['machine']['summary']}; vaelab {env['versions']['vaelab']}, torch {env['versions']['torch']}; "
                 f"commit {env['git_commit']}. Command per run: in the JSON.", "",
                 "| seed | fp32 −ELBO | bf16 −ELBO | bf16 − fp32 | fp32 recon acc | bf16 recon acc |", "|---|---|---|---|---|---|"]
        for seed in a.seeds:
            f, b = by.get((seed, "fp32")), by.get((seed, "bf16"))
            if f and b:
                lines.append(f"| {seed} | {f['test_neg_elbo']:.2f} | {b['test_neg_elbo']:.2f} | "
                             f"{b['test_neg_elbo'] - f['test_neg_elbo']:+.2f} | {f['recon_accuracy']:.4f} | {b['recon_accuracy']:.4f} |")
        Path(a.results).with_suffix(".md").write_text("\n".join(lines) + "\n")


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
    q.add_argument("--seeds", type=lambda t: [int(x) for x in t.split(",")], default=[0])
    q.add_argument("--precisions", type=lambda t: t.split(","), default=["fp32", "bf16"])
    q.add_argument("--results", default=None, help="write every run's record here (JSON) and a table beside it (.md)")
    c = sub.add_parser("ceiling")
    c.add_argument("--data-dir", default=None)
    c.add_argument("--steps", type=int, default=300, help="timed steps per configuration")
    c.add_argument("--warm", type=int, default=900, help="untimed steps first (subnormal moments appear after ~800)")
    c.add_argument("--repeats", type=int, default=1)
    pr = sub.add_parser("profile")
    pr.add_argument("--data-dir", default=None)
    pr.add_argument("--config", choices=list(CEILING), default="bf16")
    pr.add_argument("--steps", type=int, default=50)
    pr.add_argument("--warm", type=int, default=900)
    cw = sub.add_parser("ceiling-worker")
    cw.add_argument("config", choices=list(CEILING))
    cw.add_argument("--steps", type=int, default=300)
    cw.add_argument("--warm", type=int, default=900)
    cw.add_argument("--data-dir", default=None)
    w = sub.add_parser("worker")
    w.add_argument("config", choices=list(CONFIGS))
    w.add_argument("--steps", type=int, default=600)
    w.add_argument("--data-dir", default=None)
    w.add_argument("--warm-epochs", type=int, default=5)
    a = p.parse_args()
    if a.cmd == "worker":
        print(json.dumps(worker(a.config, a.steps, a.data_dir, a.warm_epochs)))
    elif a.cmd == "ceiling-worker":
        print(json.dumps(ceiling_worker(a.config, a.steps, a.warm, a.data_dir)))
    elif a.cmd == "ceiling":
        ceiling(a)
    elif a.cmd == "speed":
        speed(a)
    elif a.cmd == "profile":
        profile(a)
    else:
        quality(a)


if __name__ == "__main__":
    main()
