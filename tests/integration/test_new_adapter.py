"""``liqbot new-adapter`` writes a package that installs, registers its plugin through the
entry point, and whose conformance tests fail (not error) naming what to implement.

The package is installed into a throwaway venv, with no network: ``--system-site-packages``
from .venv's python exposes the *base* interpreter's site-packages, not .venv's, so a
``.pth`` file adds .venv's (liqbot, pytest, pip, hatchling) as a site directory.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]
NAME = "demo_proto"


def _run(*cmd: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_generated_package_installs_and_fails_its_conformance_tests(tmp_path: Path) -> None:
    liqbot = Path(sys.executable).parent / "liqbot"
    made = _run(liqbot, "new-adapter", "Demo-Proto", "--dir", tmp_path)
    assert made.returncode == 0, made.stderr
    pkg = tmp_path / f"liqbot-{NAME}"
    for rel in ("pyproject.toml", "README.md", "tests/test_conformance.py"):
        assert (pkg / rel).is_file(), rel
    for mod in ("__init__", "plugin", "indexing", "liquidation", "strategy"):
        assert (pkg / f"liqbot_{NAME}" / f"{mod}.py").is_file(), mod
    again = _run(liqbot, "new-adapter", NAME, "--dir", tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr, again

    venv = tmp_path / "venv"
    made = _run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv)
    assert made.returncode == 0, made.stderr
    py = venv / "bin" / "python"
    purelib = _run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    parent = sysconfig.get_paths()["purelib"]  # .venv's
    (Path(purelib.stdout.strip()) / "_liqbot_parent.pth").write_text(
        f"import site; site.addsitedir({parent!r})\n"
    )
    installed = _run(
        py, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", pkg
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr

    probe = _run(
        py,
        "-c",
        "from importlib.metadata import entry_points\n"
        "from bot.plugins import load_adapter, load_strategy\n"
        f"assert {NAME!r} in [e.name for e in entry_points(group='liqbot.adapters')]\n"
        f"p = load_adapter({NAME!r})\n"
        f"s = load_strategy(p.default_strategy, {NAME!r})\n"
        "print(type(p).__module__, p.name, s.name)",
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [f"liqbot_{NAME}.plugin", NAME, f"{NAME}-default"]

    # Not from .venv's point of view: the package lives only in the throwaway venv.
    outside = _run(sys.executable, "-c", f"import liqbot_{NAME}")
    assert outside.returncode != 0

    tests = _run(py, "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests", cwd=pkg)
    out = tests.stdout + tests.stderr
    assert tests.returncode == 1, out  # failures, not errors nor a collection failure
    assert "4 failed, 1 passed" in out and " error" not in out, out
    assert "not implemented: DemoProtoHarness.origin:" in out, out
    assert "Traceback" not in out and "During handling" not in out, out
