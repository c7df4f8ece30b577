"""Studies on a Ray cluster (``vaelab compare --executor ray``): every (variant, seed) run is one Ray
task that asks for ``cpus_per_run`` CPUs (and ``gpus_per_run`` GPUs), so Ray places as many runs side
by side as the cluster holds. Each task runs the same :class:`vaelab.study.execute.Job` as the serial
executor (:mod:`vaelab.study.runner`), with torch limited to its CPUs, writing into the same study layout (the run directories must
be on storage every node sees, e.g. NFS, for a multi-node cluster).

A task whose worker dies (killed, out of memory, node lost) is recorded as failed in this invocation's
results, with no failed.json: its run keeps its last checkpoint and the next invocation resumes it. A
run that raises is recorded by the Job itself, exactly as with the serial executor. With
``run_timeout`` (``--run-timeout S``) a run still going S seconds after its task started is stopped
(an exception raised in it; its worker process ended if that has not returned within 30 s more) and
recorded as failed the same way, so one hung run cannot hold up the study.

Devices: Ray hides every GPU from a task that asks for none (``CUDA_VISIBLE_DEVICES`` is empty), so
``--device cuda`` needs ``--gpus-per-run`` > 0 and a cluster with that many GPUs (both refused up
front otherwise), and ``--device auto`` with ``--gpus-per-run 0`` trains on the CPU (said once).

Ray is an optional dependency: ``pip install 'vaelab[ray]'``. Without ``address`` a local Ray instance
is started with ``num_cpus`` CPUs (default: all); ``address="auto"`` or ``"ray://host:10001"``
connects to a running cluster (see docs/guide.md, "Studies on a Ray cluster").
"""
from __future__ import annotations

import os
import signal
import threading
from typing import Any, Callable

from ..errors import ConfigError

GRACE_S = 30.0  # after the timeout's exception, seconds before the worker process is ended


class RunTimeout(BaseException):
    """Raised inside a run that exceeded ``--run-timeout`` (a BaseException, like KeyboardInterrupt, so
    the Job does not record it as the run's own failure: the run keeps its checkpoint and resumes)."""


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray, an optional extra: pip install 'vaelab[ray]'") from None
    return ray


def _run(job, threads: int, timeout_s: float | None = None) -> dict[str, Any]:
    import torch

    torch.set_num_threads(max(1, threads))
    if not timeout_s:
        return job()
    return with_timeout(job, timeout_s, lambda e: {
        "variant": job.spec.variant, "seed": job.spec.seed, "run_dir": str(job.spec.run_dir), "status": "failed",
        "error": str(e), "error_type": "RunTimeout", "stage": "timeout"})


def with_timeout(fn: Callable[[], Any], timeout_s: float, on_timeout: Callable[[RunTimeout], Any],
                 grace_s: float = GRACE_S) -> Any:
    """``fn()``, or ``on_timeout(e)`` when it is still running after ``timeout_s`` seconds: a RunTimeout
    is raised in it (from SIGALRM, in the main thread); should ``fn`` not return within ``grace_s``
    more (stuck outside Python), the process ends with status 124."""
    msg = f"the run exceeded --run-timeout {timeout_s:g}s and was stopped (its last checkpoint is kept; run again to resume)"

    def on_alarm(signum, frame):
        raise RunTimeout(msg)

    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGALRM, on_alarm) if main else None
    killer = threading.Timer(timeout_s + (grace_s if main else 0.0), lambda: os._exit(124))
    killer.daemon = True
    killer.start()
    if main:
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        return fn()
    except RunTimeout as e:
        return on_timeout(e)
    finally:
        killer.cancel()
        if main:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


class RayExecutor:
    """Runs study jobs as Ray tasks; see the module doc."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, cpus_per_run: int = 1,
                 gpus_per_run: float = 0, run_timeout: float | None = None, device: str = "auto",
                 say: Callable[[str], None] | None = None):
        if cpus_per_run < 1:
            raise ConfigError(f"--cpus-per-run must be >= 1, got {cpus_per_run}")
        if gpus_per_run < 0:
            raise ConfigError(f"--gpus-per-run must be >= 0, got {gpus_per_run}")
        if run_timeout is not None and not run_timeout > 0:
            raise ConfigError(f"--run-timeout must be a number of seconds > 0, got {run_timeout}")
        if device.startswith("cuda") and gpus_per_run == 0:
            raise ConfigError(f"--device {device} with --gpus-per-run 0: Ray hides every GPU from a task that asks for "
                              f"none; give --gpus-per-run 1 (or a fraction, to share a GPU)")
        self.ray = import_ray()
        self.address, self.num_cpus = address, num_cpus
        self.cpus_per_run, self.gpus_per_run, self.run_timeout, self.device = cpus_per_run, gpus_per_run, run_timeout, device
        self.say = say or (lambda msg: None)
        if device == "auto" and gpus_per_run == 0:
            self.say("--executor ray with --gpus-per-run 0: Ray hides the GPUs from every run, so --device auto trains "
                     "on the CPU; give --gpus-per-run to train on GPUs")

    def start(self) -> None:
        """Start (or join) Ray and check the cluster has the GPUs a run asks for."""
        if self.ray.is_initialized():
            pass
        elif self.address:
            self.ray.init(address=self.address, log_to_driver=True)
        else:
            self.ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=True,
                          object_store_memory=256 * 1024 * 1024)
        have = self.ray.cluster_resources().get("GPU", 0)
        if self.gpus_per_run > have:  # such a task would wait forever for a GPU
            raise ConfigError(f"--gpus-per-run {self.gpus_per_run:g}: the Ray cluster has {have:g} GPU(s)"
                              + ("; train on the CPU with --gpus-per-run 0 --device cpu" if not have else ""))

    def map(self, jobs: list) -> list[dict[str, Any]]:
        ray = self.ray
        self.start()
        task = ray.remote(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run, max_retries=0)(_run)
        refs = [task.remote(job, self.cpus_per_run, self.run_timeout) for job in jobs]
        out = []
        try:
            for job, ref in zip(jobs, refs):
                try:
                    out.append(ray.get(ref))
                except (ray.exceptions.WorkerCrashedError, ray.exceptions.RayTaskError, ray.exceptions.NodeDiedError,
                        ray.exceptions.OutOfMemoryError, ray.exceptions.TaskCancelledError) as e:
                    msg = f"ray task died: {type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"
                    job.say(f"{job.prefix}: FAILED: {msg} (its checkpoint is kept; run again to resume)")
                    out.append({"variant": job.spec.variant, "seed": job.spec.seed, "run_dir": str(job.spec.run_dir),
                                "status": "failed", "error": msg, "error_type": type(e).__name__, "stage": "worker"})
        except KeyboardInterrupt:
            for ref in refs:
                ray.cancel(ref, force=True)
            raise
        return out
