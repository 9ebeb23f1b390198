"""docs/operations.md explains every configuration key the settings accept."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from bot.config import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            out += keys(sub, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def test_every_key_has_a_row_in_the_key_table() -> None:
    rows = {
        line.split("|")[1].strip().strip("`")
        for line in DOC.read_text().splitlines()
        if line.startswith("| `")
    }
    every = keys(Settings)
    assert len(every) > 40
    assert sorted(set(every) - rows) == []
