"""Compiled kernels, built from the C sources in this package on first use.

The shared library is compiled with the system C compiler into a per-user cache keyed by
the source's hash (so an edited source is rebuilt and a stale build is never loaded) and
loaded with ctypes, which needs no Python headers. ``./scripts/bootstrap.sh`` builds it
at set-up; without a compiler, callers fall back to their pure-Python path, which is
exact too, only slower. ``LIQBOT_NATIVE=0`` forces that fallback.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

_SOURCE_DIR = Path(__file__).resolve().parent
_CFLAGS = ("-O2", "-std=c11", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror")


class NativeUnavailable(RuntimeError):
    """The kernel cannot be built or loaded here (no compiler, disabled, build error)."""


def cache_dir() -> Path:
    explicit = os.environ.get("LIQBOT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "liqbot" / "native"


def _library_path(name: str, source: bytes) -> Path:
    digest = hashlib.sha256(source + repr(_CFLAGS).encode()).hexdigest()[:16]
    return cache_dir() / f"{name}-{platform.machine()}-{digest}.so"


def build(name: str) -> Path:
    """Compile ``<name>.c`` unless an up-to-date build is cached; return the library path."""
    source = (_SOURCE_DIR / f"{name}.c").read_bytes()
    target = _library_path(name, source)
    if target.exists():
        return target
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise NativeUnavailable("no C compiler (cc/gcc) on PATH")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename: concurrent builders never load a partial file.
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".so.tmp")
    os.close(fd)
    try:
        done = subprocess.run(
            [compiler, *_CFLAGS, "-o", tmp, str(_SOURCE_DIR / f"{name}.c")],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise NativeUnavailable(f"{compiler} failed on {name}.c:\n{done.stderr.strip()}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


@cache
def load(name: str) -> ctypes.CDLL:
    """The built library (cached per process); ``NativeUnavailable`` when it cannot be had."""
    if os.environ.get("LIQBOT_NATIVE", "1") == "0":
        raise NativeUnavailable("disabled by LIQBOT_NATIVE=0")
    try:
        return ctypes.CDLL(str(build(name)))
    except OSError as exc:
        raise NativeUnavailable(f"cannot load {name}: {exc}") from exc
