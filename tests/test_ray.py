"""Studies on Ray (`vaelab compare --executor ray`): a 2-worker local Ray study gives the serial
executor's deterministic results; a task whose worker dies is recorded as failed and the next
invocation completes its run; without Ray the option is a one-line error."""
from __future__ import annotations

import dataclasses
import os
import signal
import sys

import pytest
import torch

from vaelab.cli import main
from vaelab.study import Job, Settings, plan, run_study
from vaelab.study.execute import _stderr
from vaelab.scoring import COST_KEYS

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test module
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 * 1024 * 1024, log_to_driver=False)
    yield
    ray.shutdown()


def tiny(out):
    return Settings(variants=["vae"], out=out, dataset="mnist-5k", backbone="small", latent_dim=4, epochs=1, seeds=(0, 1),
                    n_samples=20, iwae_k=2, iwae_n=10, progress=False)


def deterministic(res):
    """Every run's evaluation without its timings (and the per-run meta)."""
    return {(r["variant"], r["seed"]): {k: v for k, v in r["eval"].items() if k not in COST_KEYS and k != "meta"}
            for r in res["runs"]}


def test_ray_study_equals_the_serial_one(tmp_path, mnist5k_quick_classifier, local_ray):
    from vaelab.study.ray_executor import RayExecutor

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # each Ray task runs torch on its one CPU; the serial reference does the same
    try:
        serial = run_study(tiny(tmp_path / "serial"), say=lambda m: None)
    finally:
        torch.set_num_threads(threads)
    par = run_study(tiny(tmp_path / "ray"), say=lambda m: None, executor=RayExecutor(cpus_per_run=1))
    assert [r["status"] for r in par["runs"]] == ["ok", "ok"]
    assert deterministic(par) == deterministic(serial)
    for seed in (0, 1):
        a = (tmp_path / "serial" / "runs" / f"vae-s{seed}" / "checkpoint.safetensors").read_bytes()
        b = (tmp_path / "ray" / "runs" / f"vae-s{seed}" / "checkpoint.safetensors").read_bytes()
        assert a == b  # the same weights, bit for bit


@dataclasses.dataclass
class KillOnce:
    """A study job whose worker process is killed (SIGKILL) the first time it runs."""

    job: Job
    flag: str

    spec = property(lambda self: self.job.spec)
    prefix = property(lambda self: self.job.prefix)
    say = property(lambda self: self.job.say)

    def __call__(self):
        if not os.path.exists(self.flag):
            open(self.flag, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)
        return self.job()


def test_a_killed_task_is_recorded_and_the_rerun_completes_it(tmp_path, mnist5k_quick_classifier, local_ray):
    from vaelab.study.ray_executor import RayExecutor

    s = tiny(tmp_path / "study")
    jobs = [Job(spec, s, mnist5k_quick_classifier, f"vae seed {spec.seed}", _stderr) for spec in plan(s)]
    ex = RayExecutor()
    first = ex.map([KillOnce(jobs[0], str(tmp_path / "killed")), jobs[1]])
    assert first[0]["status"] == "failed" and first[0]["stage"] == "worker" and "died" in first[0]["error"]
    assert first[1]["status"] == "ok"
    assert not (jobs[0].spec.run_dir / "failed.json").exists()  # an infrastructure failure: the run stays resumable
    again = ex.map([KillOnce(jobs[0], str(tmp_path / "killed")), jobs[1]])  # the flag exists now: no kill
    assert [r["status"] for r in again] == ["ok", "ok"] and again[1]["state_before"] == "done"


def test_executor_errors_are_one_line(tmp_path, capsys, monkeypatch):
    assert main(["compare", "--variants", "vae", "--executor", "dask", "--out", str(tmp_path / "x")]) == 2
    assert "--executor: 'dask' is not valid" in capsys.readouterr().err
    assert main(["compare", "--variants", "vae", "--address", "auto", "--out", str(tmp_path / "x")]) == 2
    assert "--address: only with --executor ray" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert main(["compare", "--variants", "vae", "--executor", "ray", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'vaelab[ray]'" in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


class Hang:
    """A job that never finishes (a hung run), picklable by value."""

    def __init__(self, job):
        self.job, self.spec = job, job.spec

    def __call__(self):
        import time

        while True:
            time.sleep(0.1)


class Quick(Hang):
    """A job that finishes at once."""

    def __call__(self):
        return {"variant": self.spec.variant, "seed": self.spec.seed, "status": "ok"}


def test_a_run_past_its_timeout_is_recorded_and_the_study_goes_on(tmp_path, mnist5k_quick_classifier, local_ray):
    from vaelab.study.ray_executor import RayExecutor

    s = tiny(tmp_path / "study")
    jobs = [Job(spec, s, mnist5k_quick_classifier, f"vae seed {spec.seed}", _stderr) for spec in plan(s)]
    res = RayExecutor(run_timeout=10, device="cpu").map([Hang(jobs[0]), Quick(jobs[1])])
    assert res[0]["status"] == "failed" and res[0]["stage"] == "timeout" and "--run-timeout 10s" in res[0]["error"]
    assert res[0]["run_dir"] == str(jobs[0].spec.run_dir) and not (jobs[0].spec.run_dir / "failed.json").exists()
    assert res[1] == {"variant": "vae", "seed": 1, "status": "ok"}


def test_with_timeout_stops_a_run_stuck_outside_python():
    """The exception cannot reach code that never hands the signal to the interpreter (here: SIGALRM
    blocked, as in a hung native call): after the grace period the process is ended."""
    import subprocess

    code = ("import signal, time\nfrom vaelab.study.ray_executor import with_timeout\n"
            "stuck = lambda: (signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM]), time.sleep(60))\n"
            "with_timeout(stuck, 0.5, lambda e: print('timeout'), grace_s=0.5)\n")
    t0 = __import__("time").monotonic()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 124 and __import__("time").monotonic() - t0 < 30


def test_ray_device_mismatches_are_refused_up_front(tmp_path, capsys, local_ray):
    out = tmp_path / "x"
    assert main(["compare", "--variants", "vae", "--executor", "ray", "--device", "cuda", "--out", str(out)]) == 2
    assert "--gpus-per-run 0: Ray hides every GPU" in capsys.readouterr().err
    if not ray.cluster_resources().get("GPU"):
        assert main(["compare", "--variants", "vae", "--executor", "ray", "--gpus-per-run", "1", "--out", str(out)]) == 2
        assert "the Ray cluster has 0 GPU(s)" in capsys.readouterr().err
    assert main(["compare", "--variants", "vae", "--run-timeout", "5", "--out", str(out)]) == 2
    assert "--run-timeout: only with --executor ray" in capsys.readouterr().err
    assert not out.exists()
    from vaelab.study.ray_executor import RayExecutor

    said = []
    RayExecutor(device="auto", say=said.append)
    assert len(said) == 1 and "--device auto trains on the CPU" in said[0]
