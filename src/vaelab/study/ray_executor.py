"""Studies on a Ray cluster (``vaelab compare --executor ray``): every (variant, seed) run is one Ray
task that asks for ``cpus_per_run`` CPUs (and ``gpus_per_run`` GPUs), so Ray places as many runs side
by side as the cluster holds. Each task runs the same :class:`vaelab.study.execute.Job` as the serial
executor, with torch limited to its CPUs, writing into the same study layout (the run directories must
be on storage every node sees, e.g. NFS, for a multi-node cluster).

A task whose worker dies (killed, out of memory, node lost) is recorded as failed in this invocation's
results, with no failed.json: its run keeps its last checkpoint and the next invocation resumes it. A
run that raises is recorded by the Job itself, exactly as with the serial executor.

Ray is an optional dependency: ``pip install 'vaelab[ray]'``. Without ``address`` a local Ray instance
is started with ``num_cpus`` CPUs (default: all); ``address="auto"`` or ``"ray://host:10001"``
connects to a running cluster (see the README, "Studies on a Ray cluster").
"""
from __future__ import annotations

from typing import Any

from ..errors import ConfigError


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray, an optional extra: pip install 'vaelab[ray]'") from None
    return ray


def _run(job, threads: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(max(1, threads))
    return job()


class RayExecutor:
    """Runs study jobs as Ray tasks; see the module doc."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None, cpus_per_run: int = 1,
                 gpus_per_run: float = 0):
        if cpus_per_run < 1:
            raise ConfigError(f"--cpus-per-run must be >= 1, got {cpus_per_run}")
        if gpus_per_run < 0:
            raise ConfigError(f"--gpus-per-run must be >= 0, got {gpus_per_run}")
        self.ray = import_ray()
        self.address, self.num_cpus = address, num_cpus
        self.cpus_per_run, self.gpus_per_run = cpus_per_run, gpus_per_run

    def _init(self) -> None:
        if self.ray.is_initialized():
            return
        if self.address:
            self.ray.init(address=self.address, log_to_driver=True)
        else:
            self.ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=True,
                          object_store_memory=256 * 1024 * 1024)

    def map(self, jobs: list) -> list[dict[str, Any]]:
        ray = self.ray
        self._init()
        task = ray.remote(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run, max_retries=0)(_run)
        refs = [task.remote(job, self.cpus_per_run) for job in jobs]
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
