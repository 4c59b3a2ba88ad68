"""lm-eval task suites shipped with promot (YAML + data), usable with `--include_path`.

`mini`: offline natural-language ICL tasks (+ `mini_target`); `paper`: the ProMoT paper's tasks (network datasets).
"""
from __future__ import annotations

from pathlib import Path

SUITES_DIR = Path(__file__).parent


def suite_dir(name: str) -> Path:
    """Folder of suite `name` (pass it to lm-eval's TaskManager(include_path=...) or `--include_path`)."""
    path = SUITES_DIR / name
    if not path.is_dir() or name.startswith(("_", ".")):
        known = sorted(p.name for p in SUITES_DIR.iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
        raise ValueError(f"unknown suite {name!r}; known: {known}")
    return path
