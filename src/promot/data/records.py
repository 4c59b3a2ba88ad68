"""Read raw records from the files users already have; every record remembers where it came from.

`.jsonl`, `.json` (a JSON array, or JSON lines), either gzipped (`.jsonl.gz`, `.json.gz`), `.csv`, `.parquet`, a
folder `datasets`' `save_to_disk` wrote, and `hf:NAME[:CONFIG]` (a `datasets` name or local folder). A UTF-8 byte-order mark (what spreadsheet exports write) is
read, not refused. Errors name the file and line (`data.jsonl:17: malformed JSON …`, `data.json:9` for the array
element starting on line 9, `data.parquet[3]` for a row), so a user can fix the one bad record.
"""
from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass
from pathlib import Path

from promot.errors import DataError

SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".csv", ".csv.gz", ".parquet")


@dataclass(frozen=True)
class Record:
    fields: dict
    where: str
    """`file:line` (or `dataset[index]`) for error messages."""


def _text(path: Path) -> str:
    """The file's text, gunzipped if needed; a leading BOM dropped (utf-8-sig)."""
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(f"{path}: not a readable gzip file ({e})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        at = e.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)  # utf-8-sig counts after the BOM it drops
        line, column = raw.count(b"\n", 0, at) + 1, at - raw.rfind(b"\n", 0, at)
        raise DataError(f"{path}:{line}: not UTF-8 text (byte {column} of the line; save the file as UTF-8)") from None


def _record(obj, path: Path, lineno: int) -> Record:
    if not isinstance(obj, dict):
        raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
    return Record(obj, f"{path}:{lineno}")


def _json_lines(text: str, path: Path) -> list[Record]:
    records = []
    for lineno, line in enumerate(text.split("\n"), 1):  # not splitlines: U+2028 may sit inside a JSON string
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno})") from None
        records.append(_record(obj, path, lineno))
    return records


def _json_array(text: str, path: Path) -> list[Record]:
    """A JSON array of objects, each named by the line it starts on (json.loads alone would lose that)."""
    decoder, records = json.JSONDecoder(), []
    pos = text.index("[") + 1

    def skip(p: int) -> int:
        while p < len(text) and text[p].isspace():
            p += 1
        return p

    def fail(p: int, what: str):
        line = text.count("\n", 0, p) + 1
        col = p - (text.rfind("\n", 0, p) + 1) + 1
        raise DataError(f"{path}:{line}: malformed JSON ({what} at column {col})")

    pos = skip(pos)
    if pos < len(text) and text[pos] == "]":
        return records
    while True:
        pos = skip(pos)
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            fail(e.pos, e.msg)
        records.append(_record(obj, path, text.count("\n", 0, pos) + 1))
        pos = skip(end)
        if pos < len(text) and text[pos] == ",":
            pos += 1
        elif pos < len(text) and text[pos] == "]":
            break
        else:
            fail(pos, "expected ',' or ']' after an array element")
    if skip(pos + 1) < len(text):
        fail(skip(pos + 1), "extra data after the array")
    return records


def _read_json(path: Path) -> list[Record]:
    text = _text(path)
    if text.lstrip().startswith("["):
        return _json_array(text, path)
    return _json_lines(text, path)


def _read_csv(path: Path) -> list[Record]:
    reader = csv.DictReader(io.StringIO(_text(path), newline=""))
    # Line 1 is the header, so data row i sits on line i + 1 (rows with embedded newlines aside).
    return [Record(dict(row), f"{path}:{i}") for i, row in enumerate(reader, 2)]


def _read_parquet(path: Path) -> list[Record]:
    # pyarrow is what `datasets` reads parquet with; called directly, nothing is copied into datasets' cache.
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ... for a damaged file
        raise DataError(f"{path}: not a readable parquet file ({type(e).__name__}: {e})") from None
    return [Record(row, f"{path}[{i}]") for i, row in enumerate(rows)]


def _read_hf(spec: str, split: str) -> list[Record]:
    from datasets import load_dataset

    name, _, subset = spec.removeprefix("hf:").partition(":")
    try:
        ds = load_dataset(name, subset or None, split=split)
    except Exception as e:  # datasets raises many exception types for missing/offline data
        raise DataError(f"{spec}: cannot load split '{split}' ({type(e).__name__}: {e})") from None
    return [Record(dict(row), f"{spec}[{split}][{i}]") for i, row in enumerate(ds)]


_READERS = {".jsonl": _read_json, ".json": _read_json, ".jsonl.gz": _read_json, ".json.gz": _read_json,
            ".csv": _read_csv, ".csv.gz": _read_csv, ".parquet": _read_parquet}


def read_records(source: str, split: str = "train") -> list[Record]:
    """Any file of `SUFFIXES` or `hf:dataset[:config]`; an empty result is an error."""
    if source.startswith("hf:"):
        records = _read_hf(source, split)
    else:
        path = Path(source)
        if path.is_dir():
            if not _saved_dataset(path):
                raise DataError(f"{path}: is a directory, not a data file ({', '.join(SUFFIXES)}) nor a `datasets` "
                                "save_to_disk folder")
            return _nonempty(_read_saved(path, split), source)
        if not path.is_file():
            raise DataError(f"{path}: data file not found")
        suffix = next((s for s in sorted(SUFFIXES, key=len, reverse=True) if path.name.endswith(s)), None)
        if suffix is None:
            raise DataError(f"{path}: unsupported data format '{path.suffix}' (use {', '.join(SUFFIXES)} or hf:NAME)")
        records = _READERS[suffix](path)
    return _nonempty(records, source)


def _nonempty(records: list[Record], source: str) -> list[Record]:
    if not records:
        raise DataError(f"{source}: dataset is empty")
    return records


def _saved_dataset(path: Path) -> bool:
    """A folder `Dataset.save_to_disk` (state.json) or `DatasetDict.save_to_disk` (dataset_dict.json) wrote."""
    return (path / "state.json").is_file() or (path / "dataset_dict.json").is_file()


def _read_saved(path: Path, split: str) -> list[Record]:
    """A `save_to_disk` folder: a Dataset as it is; a DatasetDict's `split` (data.train_split / validation_split)."""
    from datasets import DatasetDict, load_from_disk

    try:
        ds = load_from_disk(str(path))
    except Exception as e:  # datasets raises FileNotFoundError, ArrowInvalid, ... for a damaged folder
        raise DataError(f"{path}: not a readable `datasets` folder ({type(e).__name__}: {e})") from None
    if isinstance(ds, DatasetDict):
        if split not in ds:
            raise DataError(f"{path}: no split '{split}' in this DatasetDict (it has {', '.join(ds)}; set "
                            "data.train_split / data.validation_split)")
        return [Record(dict(row), f"{path}[{split}][{i}]") for i, row in enumerate(ds[split])]
    return [Record(dict(row), f"{path}[{i}]") for i, row in enumerate(ds)]
