"""Loads a mini-suite task from data/<name>.<split>.jsonl next to this file (lm-eval loads this file by path).

lm-eval calls it as `custom_dataset(**metadata, **dataset_kwargs)`, so everything but `name` is ignored.
"""
from __future__ import annotations

from pathlib import Path

from promot.evaluate.suites.jsonl_data import load_splits


def load(name: str, **_ignored):
    return load_splits(Path(__file__).parent / "data", name)
