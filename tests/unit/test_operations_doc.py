"""docs/operations.md explains every configuration key the settings accept."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel

from bot.config import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def models(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation names, through unions and ``Annotated`` (the market
    section is one model per protocol)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in models(arg)]


def keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        subs = models(field.annotation)
        if subs:
            for sub in subs:
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
