"""Atomic file writes (temp file + fsync + rename), the readers of a run's records (``read_json``,
``read_metrics``) and a run-directory lock."""
from __future__ import annotations

import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from .errors import RunDirError, WriteFailed


_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise write_failed(path, e) from None
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError):
            raise write_failed(path, e) from None
        raise


def write_failed(path: str | os.PathLike, e: OSError) -> WriteFailed:
    """The one-line error of a failed write of ``path``."""
    return WriteFailed(f"cannot write {path}: {e.strerror or e} (errno {e.errno})")


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append ``text`` to ``path`` (a log of records: a torn last line is skipped by its readers); a
    failed write is a :class:`WriteFailed` naming the file."""
    try:
        with open(path, "a") as f:
            f.write(text)
    except OSError as e:
        raise write_failed(path, e) from None


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunDirError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise RunDirError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The epoch records of a ``metrics.jsonl``; a record repeated after a resume keeps its last copy."""
    path = Path(path)
    records: dict[tuple[str, int], dict[str, Any]] = {}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise RunDirError(f"{path}: file not found") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines):  # a torn last line (killed mid-write): ignore it
                continue
            raise RunDirError(f"{path}: line {n} is not valid JSON") from None
        records[(str(rec.get("phase", "train")), int(rec.get("epoch", n)))] = rec
    return list(records.values())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """An exclusive lock on a run directory (``.lock`` holding host and pid).

    A second process on the same run dir is refused. A lock left by a dead process on this
    host (e.g. after SIGKILL) is stale and taken over.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / ".lock"
        self.held = False

    def acquire(self) -> "RunLock":
        me = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(3):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    host, pid = self.path.read_text().split()
                    pid_i = int(pid)
                except (FileNotFoundError, ValueError):
                    host, pid_i = socket.gethostname(), -1
                if host == socket.gethostname() and (pid_i <= 0 or not _pid_alive(pid_i)):
                    try:
                        self.path.unlink()  # stale: its process is gone
                    except FileNotFoundError:
                        pass
                    continue
                raise RunDirError(
                    f"{self.path.parent}: run directory is in use by process {pid_i} on {host} "
                    f"(remove {self.path} if that process is gone)"
                ) from None
            except OSError as e:
                raise write_failed(self.path, e) from None
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(me)
            except OSError as e:
                self.path.unlink(missing_ok=True)
                raise write_failed(self.path, e) from None
            self.held = True
            return self
        raise RunDirError(f"{self.path}: could not take the run lock")

    def release(self) -> None:
        if self.held:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            self.held = False

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
