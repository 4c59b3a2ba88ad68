"""Local model aliases: a name in `model.name` that stands for a directory some part of promot ships (torch-free).

The library itself registers none: an application fills the table (the ICL world registers `world-tiny`, see
`promot.world`), so the loader never needs to know who ships what.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

LOCAL_ALIASES: dict[str, Callable[[], Path]] = {}
"""alias → a function returning its plain HF model directory."""


def register_local(name: str, directory: Callable[[], Path]) -> None:
    """Make `name` loadable wherever a model name is accepted (configs, `--base`, `load_model`)."""
    LOCAL_ALIASES[name] = directory
