"""Data-parallel training over several processes, on ``torch.distributed``.

Launched by ``torchrun --nproc_per_node N -m vaelab train ...`` (or ``vaelab train --nproc N``, which
starts the same through ``torch.distributed.run``): every process holds the whole dataset and the
whole model; the trainer cuts each global batch of ``--batch-size`` examples into one contiguous
share per process (rank r holds rows ``[r·m/N, (r+1)·m/N)`` of a batch of m: :class:`Share`, which the
trainer hands the model for each update as ``Variant.share``, a :class:`vaelab.share.BatchShare`),
and this module keeps the processes equal to one process training on the whole batch:

* gradients: :meth:`Share.average_gradients`, called by :func:`vaelab.optim.update` with the share
  the model passes it, between the gradient and the optimizer step, sums every process's gradient
  weighted by its share of the batch, so the step applies the gradient of the mean loss over the
  global batch. The reduction sits at each optimizer step rather than in a
  ``DistributedDataParallel`` wrapper because variants update several players from one forward pass
  (VAE-GAN's encoder, decoder and discriminator), each with its own parameters and objective;
* noise: :meth:`Share.randn` draws the reparameterisation noise of the *global* batch from the
  (identically seeded) generator of every process and keeps this process's rows, so every process's
  random stream stays where a single process's would be, and a checkpoint's RNG state is the same
  whatever the number of processes;
* statistics that decide or update state: :meth:`Share.mean` (VAE-GAN's balance rule),
  :meth:`Share.sum` (VQ-VAE's EMA codebook counts and sums), :meth:`Share.gather` (VQ-VAE's
  dead-code restarts pick from the global batch's encoder outputs; VAE-GAN's feature variance);
* :func:`broadcast_module`: parameters and buffers from rank 0 when training starts and after a
  phase's one-off initialisation.

Outside a process group (or with one process) the model computes with :data:`vaelab.share.WHOLE`
and every function here is the identity, so single-process training is unchanged bit for bit.
Only rank 0 writes the run directory.

Failure: a process that raises while training ends at once (:func:`abort`: its own traceback printed
once, no barrier, exit status 1) instead of leaving the group in order, so the others, waiting in a
collective, see their peer's connections close and end too, each with one line (:class:`PeerFailed`).
A process that hangs is caught by the group's timeout (``VAELAB_DIST_TIMEOUT`` seconds, default
600: longer than rank 0's evaluation and pictures at an epoch's end, while the others wait). A
worker whose launcher is gone (torchrun killed, even by SIGKILL) ends within a second or two
(:func:`watch_launcher`). The run directory keeps its last checkpoint and resumes.
"""
from __future__ import annotations

import datetime
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
import torch.distributed as dist

from . import rng
from .errors import ConfigError, TrainingDiverged, VaelabError, WriteFailed
from .share import BatchShare

TIMEOUT_ENV = "VAELAB_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0


class PeerFailed(RuntimeError):
    """A collective failed: another process of the group has stopped (or hangs past the timeout)."""


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank: the process group's, or before joining it the one torchrun gives (0 alone)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """True in the process that writes files (rank 0, or the only process)."""
    return rank() == 0


def launched() -> bool:
    """True when torchrun (or another launcher) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: torch.device) -> bool:
    """Join the process group torchrun describes in the environment: gloo on the CPU, NCCL on CUDA
    (each process on the GPU of its LOCAL_RANK; gloo where processes share a GPU). True when this call joined it; False (nothing done)
    when already joined or not launched."""
    if not launched() or (dist.is_available() and dist.is_initialized()):
        return False
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend(device), timeout=datetime.timedelta(seconds=timeout_s()))
    watch_launcher()
    return True


def timeout_s() -> float:
    """Seconds a collective may wait for the other processes: ``VAELAB_DIST_TIMEOUT`` or 600."""
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        t = float(raw)
    except ValueError:
        t = -1.0
    if not t > 0:
        raise ConfigError(f"{TIMEOUT_ENV}={raw!r} is not valid; give a number of seconds > 0")
    return t


def watch_launcher(poll_s: float = 1.0) -> None:
    """End this process (exit status 1) once its parent, the launcher, is gone: a worker orphaned by a
    killed torchrun would otherwise wait in its next collective until the timeout."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                sys.stderr.write(f"vaelab rank {rank()}: the launcher (pid {parent}) is gone; stopping\n")
                sys.stderr.flush()
                os._exit(1)

    threading.Thread(target=watch, name="vaelab-watch-launcher", daemon=True).start()


def die_with_parent() -> None:
    """In a child about to exec (``subprocess`` ``preexec_fn``): on Linux, have the kernel send it
    SIGTERM when its parent dies, so that a launcher killed even by SIGKILL takes torchrun, and with
    it the workers, along. Elsewhere nothing (the workers' :func:`watch_launcher` still ends them)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG


def abort(e: BaseException) -> None:
    """End this process of a group at once after ``e``: its traceback printed once (one line for a
    known error, or for a peer's failure seen here), no barrier and no interpreter teardown, exit status
    2 for bad input and 1 otherwise. The other processes see the connections close and end too."""
    r = rank()
    if isinstance(e, (PeerFailed, VaelabError, WriteFailed, TrainingDiverged)):
        sys.stderr.write(f"vaelab rank {r}: error: {e}\n")
    else:
        sys.stderr.write(f"vaelab rank {r}: failed:\n" + "".join(traceback.format_exception(e)))
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(2 if isinstance(e, VaelabError) else 1)


def _collective(fn, *args, **kwargs):
    """Run one ``torch.distributed`` collective; its failure (a peer gone, the timeout) as PeerFailed."""
    try:
        return fn(*args, **kwargs)
    except RuntimeError as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise PeerFailed(f"{fn.__name__} failed ({first}): another process has stopped or hangs; "
                         f"see its message above") from None


def close() -> None:
    """Leave the process group (at the end of a run started by torchrun), once every process is done:
    a process that tears its connections down while rank 0 still writes the run's last files is
    aborted by gloo."""
    if dist.is_available() and dist.is_initialized():
        _collective(dist.barrier)
        dist.destroy_process_group()


def leave(rc: int) -> None:
    """End one of several launched processes with exit status ``rc`` once its run is written and the
    group left (:func:`close`): flush the logs and streams and exit without the interpreter's teardown,
    where gloo's threads can abort a finished process (SIGABRT, "terminate called without an active
    exception"; seen in the test suite on a loaded machine)."""
    import logging
    import sys

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def local_device(device: torch.device) -> torch.device:
    """With several processes on CUDA, each takes the GPU of its LOCAL_RANK (round robin when there are
    more processes on this machine than GPUs: they share them, see :func:`backend`)."""
    if device.type == "cuda" and launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % max(torch.cuda.device_count(), 1))
    return device


def backend(device: torch.device) -> str:
    """NCCL when each process has a GPU of its own; gloo on the CPU, and where processes share a GPU
    (NCCL refuses two ranks on one device)."""
    if device.type != "cuda":
        return "gloo"
    return "gloo" if int(os.environ.get("LOCAL_WORLD_SIZE", "1")) > torch.cuda.device_count() else "nccl"


def share_of(m: int) -> Share:
    """This process's contiguous rows of a global batch of ``m`` examples."""
    w, r = world_size(), rank()
    return Share(r * m // w, (r + 1) * m // w, m)


def _flat_all_reduce(tensors: list[torch.Tensor]) -> None:
    """Sum each tensor over the processes, in place, in one collective per dtype."""
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for group in by_dtype.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        _collective(dist.all_reduce, flat)
        i = 0
        for t in group:
            t.copy_(flat[i:i + t.numel()].view_as(t))
            i += t.numel()


def sum_over_processes(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over every process of the group (a new tensor); ``t`` itself outside a group."""
    if world_size() == 1:
        return t
    out = t.detach().clone()
    _flat_all_reduce([out])
    return out


@dataclass(frozen=True)
class Share(BatchShare):
    """This process's rows ``[lo, hi)`` of a global batch of ``n`` examples: the :class:`vaelab.share.BatchShare`
    the trainer hands the model for each update while several processes train. With one process in the
    group (or none) its sums, means, rows and gradients are those of the whole batch, unchanged."""

    lo: int
    hi: int
    n: int

    @property
    def weight(self) -> float:
        return (self.hi - self.lo) / self.n

    def randn(self, shape: Sequence[int], batch_dim: int = 0, generator: torch.Generator | None = None,
              device=None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The noise of the whole global batch, drawn from this process's (identically seeded) generator,
        and this share's rows of it: every process's random stream stays where a single process's would
        be. A ``generator``, or a ``shape[batch_dim]`` other than this share's rows: drawn as asked."""
        if generator is not None or shape[batch_dim] != self.hi - self.lo:
            return rng.randn(shape, generator, device, dtype)
        full = list(shape)
        full[batch_dim] = self.n
        return torch.randn(full, device=device, dtype=dtype).narrow(batch_dim, self.lo, self.hi - self.lo)

    def sum(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Sums over the processes of per-process sums or counts (new tensors; the inputs unchanged)."""
        if world_size() == 1:
            return tensors
        out = [t.detach().clone() for t in tensors]
        _flat_all_reduce(out)
        return tuple(out)

    def mean(self, t: torch.Tensor) -> float:
        """The global batch's mean of a per-process batch mean ``t`` (a scalar), as a float."""
        if world_size() == 1:
            return float(t)
        n = self.hi - self.lo
        s = sum_over_processes(torch.stack([t.detach().double().reshape(()) * n, t.new_tensor(float(n), dtype=torch.float64)]))
        return float((s[0] / s[1]).to(t.dtype))

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """The rows of ``t`` of every process, in rank order (the global batch's rows when each process
        holds its share's rows); ``t`` itself with one process."""
        if world_size() == 1:
            return t
        n = torch.tensor([t.shape[0]], device=t.device)
        sizes = [torch.zeros_like(n) for _ in range(world_size())]
        _collective(dist.all_gather, sizes, n)
        big = int(max(int(s) for s in sizes))
        pad = torch.zeros((big, *t.shape[1:]), dtype=t.dtype, device=t.device)
        pad[:t.shape[0]] = t
        parts = [torch.empty_like(pad) for _ in range(world_size())]
        _collective(dist.all_gather, parts, pad.contiguous())
        return torch.cat([p[:int(s)] for p, s in zip(parts, sizes)])

    def average_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Replace every ``.grad`` by the share-weighted sum over the processes: the gradient of the mean
        loss over the global batch. Parameters without a gradient are left alone (they are the same on
        every process, since every process runs the same code)."""
        if world_size() == 1:
            return
        grads = []
        for p in params:
            if p.grad is not None:
                p.grad.mul_(self.weight)
                grads.append(p.grad)
        if grads:
            _flat_all_reduce(grads)


def broadcast_module(module: torch.nn.Module) -> None:
    """Every parameter and buffer takes rank 0's values."""
    if world_size() == 1:
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            _collective(dist.broadcast, t.data, 0)


def check_shareable(variant, batch_size: int, n_train: int, world: int | None = None) -> None:
    """A one-line ConfigError unless ``variant`` (a Variant or its class) can be trained by ``world``
    processes (default: the process group's size) with this batch size and training-set size."""
    world = world_size() if world is None else world
    why = variant.data_parallel
    if why is not True:
        raise ConfigError(f"{variant.name}: cannot be trained by {world} processes: {why}; train it in one process")
    if batch_size < world:
        raise ConfigError(f"--batch-size {batch_size} is smaller than the {world} processes that would share each batch")
    last = n_train % batch_size
    if 0 < last < world:
        raise ConfigError(f"the last batch of each epoch would hold {last} example(s) ({n_train} % {batch_size}), fewer than "
                          f"the {world} processes; change --batch-size or --train-size")
