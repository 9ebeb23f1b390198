"""Bring up an origin devnet (deploy + seed, or reload from the state cache) and forks of it."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bot.chain.anvil import AnvilOptions, AnvilProcess
from bot.devnet import artifacts
from bot.devnet.anvil_rpc import AnvilRpc
from bot.devnet.deploy import DeployOptions, MarketDeployer
from bot.devnet.manifest import Manifest
from bot.devnet.morpho import MorphoOptions, deploy_morpho
from bot.devnet.seed import seed_borrowers
from bot.errors import DevnetError
from bot.rpc import JsonRpcClient, to_int

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True, slots=True)
class DevnetSpec:
    borrowers: int = 200
    seed: int = 1
    deploy: DeployOptions = field(default_factory=DeployOptions)
    chain_id: int = 31337
    morpho: bool = False  # also deploy Morpho Blue with its markets and borrowers
    morpho_options: MorphoOptions = field(default_factory=MorphoOptions)

    def cache_key(self) -> str:
        """Changes whenever the spec, the pinned packages or the deploy code change."""
        h = hashlib.sha256(json.dumps(asdict(self), sort_keys=True, default=str).encode())
        here = Path(__file__).resolve().parent
        for src in sorted(here.glob("*.py")):
            h.update(src.read_bytes())
        nm = artifacts.node_modules()
        lock = nm.parent / "package-lock.json"
        if lock.is_file():
            h.update(lock.read_bytes())
        for out in sorted(artifacts.contracts_out().glob("*.json")):
            h.update(out.read_bytes())
        return h.hexdigest()[:16]


@dataclass(slots=True)
class Devnet:
    """A running origin anvil with a deployed, seeded market."""

    process: AnvilProcess
    manifest: Manifest
    from_cache: bool

    @property
    def url(self) -> str:
        return self.process.url

    def stop(self) -> None:
        self.process.stop()


async def start_devnet(
    spec: DevnetSpec | None = None,
    *,
    state_cache: Path | None = None,
    manifest_path: Path | None = None,
    port: int | None = None,
) -> Devnet:
    """Start an origin anvil holding the market; reuse ``state_cache`` when it matches."""
    spec = spec or DevnetSpec()
    cached = state_cache / spec.cache_key() if state_cache else None
    if cached and (cached / STATE_FILE).is_file() and (cached / MANIFEST_FILE).is_file():
        proc = AnvilProcess(
            AnvilOptions(chain_id=spec.chain_id, load_state=cached / STATE_FILE), port=port
        ).start()
        manifest = Manifest.load(cached / MANIFEST_FILE).with_rpc_url(proc.url)
        from_cache = True
    else:
        proc = AnvilProcess(AnvilOptions(chain_id=spec.chain_id), port=port).start()
        try:
            manifest = await _deploy_and_seed(proc.url, spec)
            if cached:
                await _write_cache(proc.url, manifest, cached)
        except BaseException:
            proc.stop()
            raise
        from_cache = False
    if manifest_path:
        manifest.save(manifest_path)
    log.info(
        "devnet ready",
        extra={"url": proc.url, "borrowers": len(manifest.borrowers), "from_cache": from_cache},
    )
    return Devnet(proc, manifest, from_cache)


async def _deploy_and_seed(url: str, spec: DevnetSpec) -> Manifest:
    async with JsonRpcClient(url) as rpc:
        chain = AnvilRpc(rpc)
        deployer, lp, treasury = (await chain.accounts())[:3]
        manifest = await MarketDeployer(chain, deployer, lp, treasury).deploy(spec.deploy, url)
        if spec.borrowers:
            manifest = await seed_borrowers(
                chain, manifest, spec.deploy.market, spec.borrowers, seed=spec.seed
            )
        if spec.morpho:
            manifest = await deploy_morpho(chain, manifest, spec.morpho_options, seed=spec.seed)
        return manifest


async def _write_cache(url: str, manifest: Manifest, directory: Path) -> None:
    async with JsonRpcClient(url) as rpc:
        state = await AnvilRpc(rpc).dump_state()
    await asyncio.to_thread(_write_cache_files, state, manifest, directory)


def _write_cache_files(state: str, manifest: Manifest, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    raw = gzip.decompress(bytes.fromhex(state.removeprefix("0x")))
    tmp = directory / (STATE_FILE + ".tmp")
    tmp.write_bytes(raw)
    tmp.replace(directory / STATE_FILE)
    manifest.save(directory / MANIFEST_FILE)


async def resolve_block(url: str, block: int | None) -> int:
    """The fork block: the given one, checked to exist, or the origin's latest."""
    async with JsonRpcClient(url) as rpc:
        head = to_int(await rpc.call("eth_blockNumber"))
    if block is None:
        return head
    if block > head:
        raise DevnetError(f"fork block {block} is past the head {head} of {url}")
    return block


async def start_fork(
    from_url: str, block: int | None = None, *, port: int | None = None
) -> AnvilProcess:
    """A second anvil forking ``from_url`` at ``block`` (default: its latest block)."""
    number = await resolve_block(from_url, block)
    opts = AnvilOptions(chain_id=None, fork_url=from_url, fork_block_number=number)
    return AnvilProcess(opts, port=port).start()
