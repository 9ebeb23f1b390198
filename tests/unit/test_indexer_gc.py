"""The backfill's garbage-collector setting is scoped: the process's comes back."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from bot.indexer.indexer import _fewer_collections


@pytest.fixture
def thresholds() -> Iterator[tuple[int, ...]]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield gc.get_threshold()
    gc.set_threshold(*before)


def test_raised_while_a_backfill_runs_and_restored_after(thresholds: tuple[int, ...]) -> None:
    with _fewer_collections(50_000):
        assert gc.get_threshold() == (50_000, 10, 10)
    assert gc.get_threshold() == thresholds


def test_interleaved_backfills_restore_when_the_last_ends(thresholds: tuple[int, ...]) -> None:
    """Two indexers' backfills on one event loop: the first to end must not restore the
    default under the other, nor the second restore the raised value for good."""
    first, second = _fewer_collections(50_000), _fewer_collections(50_000)
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_threshold() == (50_000, 10, 10)
    second.__exit__(None, None, None)
    assert gc.get_threshold() == thresholds


def test_restored_when_the_backfill_fails(thresholds: tuple[int, ...]) -> None:
    with pytest.raises(RuntimeError), _fewer_collections(50_000):
        raise RuntimeError("the node lied")
    assert gc.get_threshold() == thresholds
