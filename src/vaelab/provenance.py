"""Where a result came from: library versions, the machine, the git commit, and timestamps.

Every record vaelab writes (config.json, eval.json, results.json) takes its versions and times from
here, so they are produced in one place and read the same everywhere.
"""
from __future__ import annotations

import os
import platform
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from ._version import __version__


def now() -> str:
    """The local time as ISO 8601 with the UTC offset, e.g. ``2026-12-02T17:18:33+0000``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def versions() -> dict[str, str]:
    """vaelab, torch, numpy and Python versions."""
    import numpy
    import torch

    return {"vaelab": __version__, "torch": torch.__version__, "numpy": numpy.__version__, "python": platform.python_version()}


def _first_line(path: str, prefix: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.lower().startswith(prefix.lower()):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def environment() -> dict[str, Any]:
    """Versions (also of SciPy, scikit-learn, matplotlib, Pillow, safetensors), the machine (platform,
    CPU model, cores, threads, memory) and the vaelab git commit if any."""
    import torch

    vers = dict(versions())
    for mod in ("scipy", "sklearn", "matplotlib", "PIL", "safetensors"):
        try:
            vers[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            pass
    cpu = _first_line("/proc/cpuinfo", "model name") or platform.processor() or platform.machine()
    mem = _first_line("/proc/meminfo", "MemTotal")
    try:
        mem = round(int(mem.split()[0]) / 2**20, 1) if mem else None
    except ValueError:
        mem = None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        usable = os.cpu_count()
    machine = {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable,
               "torch_threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
               "memory_gib": mem, "hostname": socket.gethostname()}
    machine["summary"] = f"{cpu}, {usable} core(s), torch {torch.get_num_threads()} thread(s), {platform.system()} {platform.release()}"
    return {"versions": vers, "machine": machine, "git_commit": git_commit()}


def git_commit() -> str | None:
    """The commit of the vaelab source tree (``+dirty`` with uncommitted changes), or None outside git."""
    here = Path(__file__).resolve().parent
    try:
        r = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if r.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return r.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
