"""Reads a suite task's splits from <data_dir>/<name>.<split>.jsonl (no network, no HF cache)."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import datasets


def load_splits(data_dir: Path, name: str) -> datasets.DatasetDict:
    """The splits, read once per process while the files are unchanged: lm-eval loads every task on every
    `simple_evaluate` call, and building the Arrow tables cost a world-suite pass 15% of its time."""
    files = sorted(data_dir.glob(f"{name}.*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no data for task {name!r} in {data_dir}")
    stamp = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    return datasets.DatasetDict(_read(name, stamp))  # a new dict each call: a caller may replace a split


@functools.lru_cache(maxsize=256)
def _read(name: str, stamp: tuple) -> dict[str, datasets.Dataset]:
    splits = {}
    for path, _, _ in stamp:
        f = Path(path)
        split = f.name[len(name) + 1:-len(".jsonl")]
        rows = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
        splits[split] = datasets.Dataset.from_list(rows)
    return splits
