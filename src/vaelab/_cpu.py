"""Process-wide CPU settings that make training faster; results change only below 1.2e-38 (flushing).

``tune_malloc``: keep glibc's malloc from handing large blocks back to the OS after every training step.

On these CPUs a training loop that frees and re-maps its ~30 MB activation buffers every step runs
markedly slower than one whose allocator keeps them (docs/results/speed-cpu.md, "CPU process settings").
Setting the mmap threshold (32 MiB) and the trim threshold (1 GiB) through ``mallopt`` does what
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` do, in-process. Off with
``VAELAB_MALLOC_TUNING=0`` (or ``--no-malloc-tuning``).

``flush_denormals``: treat subnormal floats (|x| < 1.2e-38 in fp32) as zero. Adam's first moment
of a weight whose gradient stays exactly zero (a dead ReLU unit, a border pixel that is always 0)
decays by 0.9 per step into the subnormal range within about 800 steps, and x86 handles subnormals
in microcode: a VaDE run on the ``dec`` backbone with millions of subnormal Adam moments took more
than twice as long per epoch (figures: docs/results/speed-cpu.md, "CPU process settings"). Flushing them
changes values below 1.2e-38 only. Off with ``VAELAB_FLUSH_DENORMAL=0`` (or ``--no-flush-denormal``).
The setting lives in each thread's FP control register: threads started later inherit it, but torch's OpenMP workers already running
(any parallel torch operation starts them) do not, and with 2 threads they compute half of every
kernel. So the call also runs ``torch.set_flush_denormal`` once on every thread of the OpenMP team,
through the runtime's ``GOMP_parallel`` entry point (libgomp, and Intel's and LLVM's runtimes, which
export it). Without that, a trainer started after other torch work kept its subnormal Adam moments
and its optimizer step slowed down severalfold after about 800 steps (same section).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
_BODY = ctypes.CFUNCTYPE(None, ctypes.c_void_p)  # an OpenMP parallel region's body
_applied = False


def tune_malloc() -> bool:
    """Apply the settings once per process; True if glibc accepted them."""
    global _applied
    if _applied:
        return True
    if os.environ.get("VAELAB_MALLOC_TUNING", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1
        ok = libc.mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024) == 1 and ok
    except (OSError, AttributeError):
        return False
    _applied = ok
    return ok


@functools.lru_cache(maxsize=1)
def _gomp_parallel():
    """``GOMP_parallel`` of the OpenMP runtime torch runs its kernels on (the one mapped into this
    process), typed for a ``void (*)(void *)`` body, or None."""
    lib = _openmp_runtime()
    if lib is None:
        return None
    fn = lib.GOMP_parallel
    fn.argtypes = [_BODY, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
    fn.restype = None
    return fn


def _openmp_runtime() -> ctypes.CDLL | None:
    """The OpenMP runtime mapped into this process that exports ``GOMP_parallel``, or None."""
    try:
        with open("/proc/self/maps") as f:
            paths = [line.split()[-1] for line in f if "/" in line]
    except OSError:
        paths = []
    for name in ("libgomp", "libiomp", "libomp"):
        for path in paths:
            if os.path.basename(path).startswith(name):
                try:
                    lib = ctypes.CDLL(path)
                    lib.GOMP_parallel  # noqa: B018 - the entry point used below must exist
                    return lib
                except (OSError, AttributeError):
                    continue
    try:
        lib = ctypes.CDLL(None)
        lib.GOMP_parallel  # noqa: B018
        return lib
    except (OSError, AttributeError):
        return None


def on_every_openmp_thread(fn, n_threads: int) -> int:
    """Run ``fn()`` once on each of ``n_threads`` threads of the OpenMP team (the caller's included);
    returns how many ran it (0 when no OpenMP runtime is found)."""
    parallel = _gomp_parallel()
    if parallel is None:
        return 0
    ran = []

    def body(_):
        fn()
        ran.append(1)
    parallel(_BODY(body), None, max(int(n_threads), 1), 0)
    return len(ran)


def flush_denormals() -> bool:
    """Flush subnormal floats to zero on this thread, torch's running OpenMP workers and threads started
    later; True if applied."""
    if os.environ.get("VAELAB_FLUSH_DENORMAL", "1") == "0":
        return False
    import torch

    if not torch.set_flush_denormal(True):
        return False
    on_every_openmp_thread(lambda: torch.set_flush_denormal(True), torch.get_num_threads())
    return True


def tune_process() -> None:
    """Both settings above, each unless switched off by its environment variable."""
    tune_malloc()
    flush_denormals()
