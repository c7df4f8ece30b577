"""Training throughput of the seed VAE (paper backbone, batch 100, Adam) by where it runs: 1 and N
processes on the CPU (gloo), and on CUDA when there is one: one GPU eager / compiled, and N GPUs.

Every configuration is a real `vaelab train` in a fresh process (``--nproc N`` for several), and its
figure is the images/s of the last epoch in the run's metrics.jsonl (the first epochs pay for
start-up and compilation). Run by hand; prints a table and asserts nothing.

    python benchmarks/scaling.py --dataset mnist-5k --epochs 2                # CPU: 1 and 2 processes
    python benchmarks/scaling.py --dataset mnist --epochs 3 --configs gpu     # a GPU machine
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def configs(kind: str, nproc: int) -> list[tuple[str, list[str], dict[str, str]]]:
    """(label, extra vaelab train arguments, environment) of each configuration."""
    cores = os.cpu_count() or 1
    cpu = [(f"cpu, 1 process, {cores} threads", ["--device", "cpu"], {"OMP_NUM_THREADS": str(cores)})]
    for n in range(2, nproc + 1):
        per = max(1, cores // n)
        cpu.append((f"cpu, {n} processes (gloo), {per} thread(s) each", ["--device", "cpu", "--nproc", str(n)],
                    {"OMP_NUM_THREADS": str(per)}))
    if kind == "cpu":
        return cpu
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("--configs gpu: this machine has no CUDA device")
    gpus = torch.cuda.device_count()
    gpu = [("cuda, eager, fp32", ["--device", "cuda"], {}),
           ("cuda, eager, bf16", ["--device", "cuda", "--precision", "bf16"], {}),
           ("cuda, compiled, bf16", ["--device", "cuda", "--precision", "bf16", "--compile"], {})]
    for n in range(2, min(nproc, gpus) + 1):
        gpu.append((f"cuda, {n} GPUs (NCCL), bf16", ["--device", "cuda", "--precision", "bf16", "--nproc", str(n)], {}))
    return gpu if kind == "gpu" else cpu + gpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist-5k")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--nproc", type=int, default=2, help="the most processes (CPU) or GPUs to try")
    ap.add_argument("--configs", choices=("cpu", "gpu", "all"), default="cpu")
    ap.add_argument("--out", default=None, help="keep the runs here (default: a temporary directory)")
    a = ap.parse_args()
    root = Path(a.out or tempfile.mkdtemp(prefix="vaelab-scaling-"))
    print(f"# {cpu_model()}, {os.cpu_count()} cores; vae, paper backbone, batch {a.batch_size}, "
          f"{a.dataset}, {a.epochs} epochs, images/s of the last epoch")
    print("| configuration | images/s | s/epoch | wall s |")
    print("|---|---|---|---|")
    for i, (label, extra, env) in enumerate(configs(a.configs, a.nproc)):
        out = root / f"run{i}"
        cmd = [sys.executable, "-m", "vaelab", "train", "vae", "--backbone", "paper", "--batch-size", str(a.batch_size),
               "--epochs", str(a.epochs), "--dataset", a.dataset, "--no-progress", "--out", str(out), *extra]
        if a.data_dir:
            cmd += ["--data-dir", a.data_dir]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            print(f"| {label} | failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode} | | |")
            continue
        last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
        print(f"| {label} | {last['images_per_s']:.0f} | {last['seconds']:.2f} | {wall:.0f} |", flush=True)


if __name__ == "__main__":
    main()
