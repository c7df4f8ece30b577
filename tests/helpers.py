"""Test helpers: paths, subprocess CLI runs, a local HTTP server."""
from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import vaelab

REPO = Path(__file__).resolve().parents[1]
SRC = Path(vaelab.__file__).resolve().parents[1]


def find_full_mnist() -> Path | None:
    """The full MNIST IDX files in $VAELAB_DATA/mnist (the README's way to run the tests that need
    them), or None."""
    if not os.environ.get("VAELAB_DATA"):
        return None
    d = Path(os.environ["VAELAB_DATA"]) / "mnist"
    return d if any((d / n).is_file() for n in ("t10k-images-idx3-ubyte", "t10k-images-idx3-ubyte.gz")) else None


#: The full MNIST IDX files for the tests that need them (they skip where it is None).
FULL_MNIST = find_full_mnist()


def env(**extra) -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(SRC) + os.pathsep + e.get("PYTHONPATH", "")
    e.setdefault("OMP_NUM_THREADS", "2")
    e.update({k: str(v) for k, v in extra.items()})
    return e


def cli(*args, timeout=600, **envextra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vaelab", *map(str, args)], capture_output=True, text=True,
                          env=env(**envextra), timeout=timeout)


def popen_cli(*args, **envextra) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vaelab", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env(**envextra))


class LocalServer:
    """Serve a directory on 127.0.0.1 (random port) in a thread."""

    def __init__(self, directory: Path):
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
