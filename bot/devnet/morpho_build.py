"""Compile Morpho Blue 1.0.0 (Morpho, OracleMock, IrmMock) from the pinned npm sources.

The package ships Solidity sources only (no artifacts), and its licence (BUSL-1.1) is one
more reason not to commit its bytecode here: the devnet compiles it with the pinned
solc-js at set-up (``scripts/bootstrap.sh``) or on first use, into a per-user cache keyed
by the hash of the sources, the compiler version and the settings. A changed input is a
new cache directory, so a stale build is never loaded.

Settings: solc 0.8.19 with the optimizer at 999,999 runs and ``viaIR`` on, as Morpho
built and deployed Blue 1.0.0 (its Hardhat config and Foundry ``build`` profile, and the
mainnet verification: 0.8.19, 999999 runs, via-IR). The package does not ship those config
files, so this is stated here rather than read. ``evmVersion`` is 0.8.19's default
(``paris``), written out so the cache key names it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from bot.abi import ContractAbi
from bot.devnet import artifacts
from bot.devnet.artifacts import Artifact
from bot.errors import ArtifactError

log = logging.getLogger(__name__)

PACKAGE = "@morpho-org/morpho-blue"
CONTRACTS = {
    "Morpho": "Morpho.sol",
    "OracleMock": "mocks/OracleMock.sol",
    "IrmMock": "mocks/IrmMock.sol",
}
# Morpho emits its events from a library, and solc < 0.8.20 leaves library events out of
# the emitting contract's ABI: they are taken from EventsLib's ABI and merged into Morpho's.
EVENTS = ("EventsLib", "libraries/EventsLib.sol")
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 999_999},
    "viaIR": True,
    "evmVersion": "paris",
    "outputSelection": {
        **{path: {name: ["abi", "evm.bytecode.object"]} for name, path in CONTRACTS.items()},
        EVENTS[1]: {EVENTS[0]: ["abi"]},
    },
}

# solc-js reads the standard JSON on stdin and resolves imports relative to the package's
# src/ (every Morpho import is relative, so that is the whole import scheme).
_COMPILE_JS = """
const fs = require('fs'), path = require('path');
const [solcPath, srcDir] = process.argv.slice(1);
const solc = require(solcPath);
const input = fs.readFileSync(0, 'utf8');
const read = (p) => {
  const f = path.join(srcDir, p);
  return fs.existsSync(f) ? { contents: fs.readFileSync(f, 'utf8') } : { error: 'not found: ' + p };
};
const output = JSON.parse(solc.compile(input, { import: read }));
process.stdout.write(JSON.stringify({ version: solc.version(), output }));
"""


@dataclass(frozen=True, slots=True)
class MorphoBuild:
    directory: Path
    solc_version: str  # the npm package's (the artifacts record solc's full version string)

    def artifact(self, name: str) -> Artifact:
        data = json.loads((self.directory / f"{name}.json").read_text())
        return Artifact(name, ContractAbi(name, data["abi"]), data["bytecode"], {})


def cache_root() -> Path:
    explicit = os.environ.get("LIQBOT_CACHE_DIR")
    if explicit:
        return Path(explicit) / "morpho"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "liqbot" / "morpho"


def source_dir() -> Path:
    src = artifacts.node_modules() / PACKAGE / "src"
    if not (src / "Morpho.sol").is_file():
        raise ArtifactError(f"{PACKAGE} sources not found under {src}: run the set-up (npm)")
    return src


def _solc_version(nm: Path) -> str:
    version: str = json.loads((nm / "solc" / "package.json").read_text())["version"]
    return version


def _standard_input(src: Path) -> dict[str, Any]:
    paths = (*CONTRACTS.values(), EVENTS[1])
    sources = {path: {"content": (src / path).read_text()} for path in paths}
    return {"language": "Solidity", "sources": sources, "settings": SETTINGS}


def build_key(src: Path, solc_version: str) -> str:
    """Hash of every source file of the package, the compiler version and the settings."""
    h = hashlib.sha256()
    for f in sorted(src.rglob("*.sol")):
        h.update(f.relative_to(src).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    h.update(solc_version.encode())
    h.update(json.dumps(SETTINGS, sort_keys=True).encode())
    return h.hexdigest()[:16]


def build() -> MorphoBuild:
    """The compiled contracts, from the cache or compiled now (~1-2 min with solc-js)."""
    nm = artifacts.node_modules()
    src = source_dir()
    version = _solc_version(nm)
    target = cache_root() / build_key(src, version)
    if all((target / f"{name}.json").is_file() for name in CONTRACTS):
        return MorphoBuild(target, version)
    node = shutil.which("node")
    if node is None:
        raise ArtifactError("node is needed to compile Morpho Blue with solc-js")
    log.info("compiling Morpho Blue", extra={"solc": version, "into": str(target)})
    done = subprocess.run(
        [node, "-e", _COMPILE_JS, str(nm / "solc"), str(src)],
        input=json.dumps(_standard_input(src)),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ArtifactError(f"solc-js failed on Morpho Blue: {done.stderr.strip()[-2000:]}")
    result = json.loads(done.stdout)
    errors = [e for e in result["output"].get("errors", []) if e["severity"] == "error"]
    if errors:
        raise ArtifactError("Morpho Blue does not compile: " + errors[0]["formattedMessage"])
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write a sibling directory and rename it into place: a concurrent builder or an
    # interrupted one never leaves a half-written build under the key.
    contracts = result["output"]["contracts"]
    events = contracts[EVENTS[1]][EVENTS[0]]["abi"]
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".build-"))
    try:
        for name, path in CONTRACTS.items():
            c = contracts[path][name]
            artifact = {
                "contractName": name,
                "source": f"{PACKAGE}/src/{path}",
                "compiler": result["version"],
                "settings": SETTINGS,
                "abi": c["abi"] + events if name == "Morpho" else c["abi"],
                "bytecode": c["evm"]["bytecode"]["object"],
            }
            (tmp / f"{name}.json").write_text(json.dumps(artifact))
        try:
            tmp.rename(target)
        except OSError:
            if not target.is_dir():  # not a lost race with another builder
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return MorphoBuild(target, version)


@cache
def _cached_build() -> MorphoBuild:
    return build()


def artifact(name: str) -> Artifact:
    """A compiled contract (built once per process, from the cache when it is there)."""
    return _cached_build().artifact(name)
