"""benchmarks/gpu_check.sh in its CPU mode: every step of the GPU check runs (so the script cannot rot
while no GPU is at hand) and its summary says so."""
from __future__ import annotations

import json
import subprocess
import sys

from helpers import REPO, env


def test_the_gpu_check_runs_in_its_cpu_mode(tmp_path):
    r = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--cpu"], capture_output=True, text=True,
                       env=env(OUT=str(tmp_path), PYTHON=sys.executable, OMP_NUM_THREADS=1), timeout=480)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((tmp_path / "gpu_check.json").read_text())
    assert s["mode"] == "cpu" and s["ok"]
    assert list(s["steps"]) == ["throughput", "bitwise", "evaluate", "sample", "torchrun-1", "gloo-2"]
    assert all(v > 0 for k, v in s["steps"]["throughput"].items() if k.endswith("images_per_s"))
    assert len([k for k in s["steps"]["throughput"] if k.endswith("images_per_s")]) == 4
    assert s["steps"]["bitwise"]["identical"] is True
    assert s["steps"]["evaluate"]["device"] == "cpu"
    assert s["steps"]["gloo-2"]["backend"] == "gloo" and s["steps"]["gloo-2"]["max_weight_difference"] < 1e-3
    assert (tmp_path / "samples.png").stat().st_size > 0 and "| bitwise | yes |" in (tmp_path / "gpu_check.md").read_text()
