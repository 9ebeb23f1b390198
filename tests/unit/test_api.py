"""Shared types parsed from JSON-RPC answers."""

from __future__ import annotations

from bot.api import BlockRef


def test_block_ref_from_header_with_and_without_base_fee() -> None:
    header = {"number": "0x10", "hash": "0xaa", "parentHash": "0xbb", "timestamp": "0x64"}
    assert BlockRef.from_json(header) == BlockRef(16, "0xaa", "0xbb", 100, 0)
    london = {**header, "baseFeePerGas": "0x3b9aca00"}
    assert BlockRef.from_json(london).base_fee == 10**9
