"""Where dataset files come from: a directory search path, then a verified atomic download."""
from __future__ import annotations

import gzip
import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import DataError
from ..io import atomic_write_bytes


def cache_dir() -> Path:
    """The user cache dir for vaelab (``$VAELAB_CACHE``, else ``$XDG_CACHE_HOME/vaelab``, else ``~/.cache/vaelab``)."""
    if os.environ.get("VAELAB_CACHE"):
        return Path(os.environ["VAELAB_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vaelab"


def find_file(dirs: list[Path], stem: str) -> Path | None:
    """First of ``stem`` or ``stem.gz`` found in ``dirs``."""
    for d in dirs:
        for name in (stem, stem + ".gz"):
            p = d / name
            if p.is_file():
                return p
    return None


def download(stem: str, dest_dir: Path, mirrors: list[str], sha256: str | None, timeout: float = 60.0) -> Path:
    """Download ``stem.gz`` from the first mirror that serves bytes matching ``sha256``.

    The checksum is taken over the *uncompressed* bytes. The file lands in ``dest_dir`` (as the
    uncompressed ``stem``) only after verification, by atomic rename: a failed or corrupt download
    leaves nothing behind.
    """
    errors = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + stem + ".gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as r:
                blob = r.read()
        except (urllib.error.URLError, OSError) as e:
            errors.append(f"{url}: {getattr(e, 'reason', e)}")
            continue
        try:
            raw = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
        except (OSError, EOFError) as e:
            errors.append(f"{url}: corrupt gzip ({e})")
            continue
        got = hashlib.sha256(raw).hexdigest()
        if sha256 is not None and got != sha256:
            errors.append(f"{url}: sha256 mismatch (got {got[:12]}…, expected {sha256[:12]}…)")
            continue
        path = dest_dir / stem
        atomic_write_bytes(path, raw)
        return path
    raise DataError(f"{stem}: download failed from every mirror: " + "; ".join(errors))
