"""Failure paths: a write that fails ends a run with one line (exit 1) and the last good checkpoint
intact; with several processes, one that raises or is killed takes the others down within seconds
(none waits in a collective), and the run then resumes to the uninterrupted result; a launcher
killed with SIGKILL leaves no worker behind."""
from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import REPO, env
from test_parallel import WORKER, assert_close_runs, worker

SMALL = ["--backbone", "small", "--latent-dim", "4", "--train-size", "400", "--batch-size", "100", "--no-progress"]


def _vaelab(*args, fsize: int | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    def limit():
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    return subprocess.run([sys.executable, "-m", "vaelab", *map(str, args)], capture_output=True, text=True,
                          env=env(OMP_NUM_THREADS=1), timeout=timeout, preexec_fn=limit)


def test_a_failed_write_is_one_line_and_the_last_checkpoint_stays(tmp_path):
    run = tmp_path / "r"
    r = _vaelab("train", "vae", *SMALL, "--epochs", 1, "--out", run)
    assert r.returncode == 0, r.stderr
    before = (run / "checkpoint.safetensors").read_bytes()
    assert len(before) > 100_000
    r = _vaelab("train", "--resume", run, "--epochs", 2, "--no-progress", fsize=100_000)  # the checkpoint no longer fits
    assert r.returncode == 1, r.stderr
    lines = [line for line in r.stderr.splitlines() if not line.startswith("train epoch")]  # (progress lines)
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"cannot write {run}/" in lines[0] and "File too large" in lines[0]
    assert f"the last complete checkpoint in {run} is kept" in lines[0] and f"vaelab train --resume {run}" in lines[0]
    assert (run / "checkpoint.safetensors").read_bytes() == before
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp") or p.name == ".lock"]
    r = _vaelab("train", "--resume", run, "--epochs", 2, "--no-progress")  # room again: it resumes
    assert r.returncode == 0, r.stderr
    whole = tmp_path / "whole"
    assert _vaelab("train", "vae", *SMALL, "--epochs", 2, "--out", whole).returncode == 0
    assert (run / "checkpoint.safetensors").read_bytes() == (whole / "checkpoint.safetensors").read_bytes()


def test_a_run_directory_that_cannot_be_made_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    r = _vaelab("train", "vae", *SMALL, "--epochs", 1, "--out", blocker / "run")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"cannot write {blocker}/run" in r.stderr


def _launch_failing(out: Path, spec: str, epochs: int = 2) -> tuple[subprocess.CompletedProcess, float]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", WORKER,
           str(out), "sgd", "vae", str(epochs)]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env(OMP_NUM_THREADS=1, DP_FAIL=spec), timeout=240)
    return r, time.monotonic() - t0


@pytest.mark.parametrize("spec", ["0:4:raise", "1:4:kill"], ids=["rank0-raises", "rank1-killed"])
def test_a_failing_process_takes_the_group_down_and_the_run_resumes(tmp_path, spec):
    """Three updates an epoch: the failure comes in epoch 2, after epoch 1's checkpoint."""
    r, seconds = _launch_failing(tmp_path / "split", spec)
    assert r.returncode != 0
    assert seconds < 60, f"the processes took {seconds:.0f}s to end"
    if spec.endswith("raise"):
        assert r.stderr.count("RuntimeError: injected failure at step 4") == 1, r.stderr[-3000:]
        assert "vaelab rank 1: error:" in r.stderr and "another process has stopped" in r.stderr
    assert not [p for p in (tmp_path / "split" / "vae").iterdir() if p.name.endswith(".tmp")]
    worker(2, tmp_path / "split", "sgd", "vae", 2, "resume")
    worker(2, tmp_path / "whole", "sgd", "vae", 2)
    assert_close_runs(tmp_path / "split" / "vae", tmp_path / "whole" / "vae", atol=0)


def test_time_based_checkpoints_with_several_processes(tmp_path):
    """A checkpoint due by the clock (here due at every update on rank 0 and never on rank 1) never makes
    one process enter a collective alone: the run ends, and as the run without those checkpoints does."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", WORKER,
           str(tmp_path / "often"), "sgd", "vae", "2"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env(OMP_NUM_THREADS=1, DP_CHECKPOINT_EVERY="1e-6"), timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    worker(2, tmp_path / "whole", "sgd", "vae", 2)
    assert_close_runs(tmp_path / "often" / "vae", tmp_path / "whole" / "vae", atol=0)


def _processes_with(marker: str) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if marker in (d / "cmdline").read_bytes().decode(errors="replace") and int(d.name) != os.getpid():
                    out.append(int(d.name))
            except OSError:
                pass
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_launcher_killed_with_sigkill_leaves_no_worker(tmp_path):
    out = tmp_path / "killed-launcher"
    p = subprocess.Popen([sys.executable, "-m", "vaelab", "train", "vae", "--nproc", "2", "--backbone", "small",
                          "--latent-dim", "4", "--train-size", "2000", "--batch-size", "100", "--epochs", "200",
                          "--no-progress", "--device", "cpu", "--out", str(out)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(OMP_NUM_THREADS=1), cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        while not (out / "metrics.jsonl").exists():  # the workers are training
            assert p.poll() is None and time.monotonic() < deadline, "the run did not start"
            time.sleep(0.5)
        assert len(_processes_with(str(out))) >= 3  # the launcher, torchrun and its workers
        p.send_signal(signal.SIGKILL)
        p.wait()
        deadline = time.monotonic() + 60
        while _processes_with(str(out)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _processes_with(str(out)) == []
    finally:
        for pid in _processes_with(str(out)):
            os.kill(pid, signal.SIGKILL)
