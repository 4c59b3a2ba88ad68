"""Read raw records from JSONL, CSV or a `datasets` path; every record remembers where it came from.

Errors name the file and line (`data.jsonl:17: malformed JSON …`), so a user can fix the one bad line.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from promot.errors import DataError


@dataclass(frozen=True)
class Record:
    fields: dict
    where: str
    """`file:line` (or `dataset[index]`) for error messages."""


def _read_jsonl(path: Path) -> list[Record]:
    records = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            records.append(Record(obj, f"{path}:{lineno}"))
    return records


def _read_csv(path: Path) -> list[Record]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        # Line 1 is the header, so data row i sits on line i + 1 (rows with embedded newlines aside).
        return [Record(dict(row), f"{path}:{i}") for i, row in enumerate(reader, 2)]


def _read_hf(spec: str, split: str) -> list[Record]:
    from datasets import load_dataset

    name, _, subset = spec.removeprefix("hf:").partition(":")
    try:
        ds = load_dataset(name, subset or None, split=split)
    except Exception as e:  # datasets raises many exception types for missing/offline data
        raise DataError(f"{spec}: cannot load split '{split}' ({type(e).__name__}: {e})") from None
    return [Record(dict(row), f"{spec}[{split}][{i}]") for i, row in enumerate(ds)]


def read_records(source: str, split: str = "train") -> list[Record]:
    """JSONL (`.jsonl`/`.json`), CSV (`.csv`) or `hf:dataset[:config]`; an empty result is an error."""
    if source.startswith("hf:"):
        records = _read_hf(source, split)
    else:
        path = Path(source)
        if path.is_dir():
            raise DataError(f"{path}: is a directory, not a data file (JSONL or CSV)")
        if not path.is_file():
            raise DataError(f"{path}: data file not found")
        try:
            if path.suffix == ".csv":
                records = _read_csv(path)
            elif path.suffix in (".jsonl", ".json"):
                records = _read_jsonl(path)
            else:
                raise DataError(f"{path}: unsupported data format '{path.suffix}' (use .jsonl, .csv or hf:NAME)")
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: not UTF-8 text (byte {e.start})") from None
    if not records:
        raise DataError(f"{source}: dataset is empty")
    return records
