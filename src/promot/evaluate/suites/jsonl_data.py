"""Reads a suite task's splits from <data_dir>/<name>.<split>.jsonl (no network, no HF cache)."""
from __future__ import annotations

import json
from pathlib import Path

import datasets


def load_splits(data_dir: Path, name: str) -> datasets.DatasetDict:
    files = sorted(data_dir.glob(f"{name}.*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no data for task {name!r} in {data_dir}")
    splits = {}
    for f in files:
        split = f.name[len(name) + 1:-len(".jsonl")]
        rows = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
        splits[split] = datasets.Dataset.from_list(rows)
    return datasets.DatasetDict(splits)
