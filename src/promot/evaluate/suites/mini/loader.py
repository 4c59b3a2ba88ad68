"""Loads a mini-suite task from data/<name>.<split>.jsonl next to this file (no network, no HF cache).

lm-eval calls it as `custom_dataset(**metadata, **dataset_kwargs)`, so everything but `name` is ignored.
"""
from __future__ import annotations

import json
from pathlib import Path

import datasets

DATA_DIR = Path(__file__).parent / "data"


def load(name: str, **_ignored) -> datasets.DatasetDict:
    files = sorted(DATA_DIR.glob(f"{name}.*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no data for mini task {name!r} in {DATA_DIR}")
    splits = {}
    for f in files:
        split = f.name[len(name) + 1:-len(".jsonl")]
        rows = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
        splits[split] = datasets.Dataset.from_list(rows)
    return datasets.DatasetDict(splits)
