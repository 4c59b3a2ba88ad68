"""The run's validation examples as a file (RUN/validation.jsonl): what selection scored, as the model read it
(templated, k-shot, chat-rendered), so `promot eval` and `promot export` need neither the data files nor the config
that found them. Written by hand: a line per example is all it is, and `datasets` would add a cache for 64 rows."""
from __future__ import annotations

import json
from pathlib import Path

from promot.data.templates import Example
from promot.errors import CheckpointError
from promot.io import atomic_write_text


def write_examples(path: str | Path, tasks: list[tuple[str | None, list[Example]]]) -> None:
    """One JSON line per example, its task's name (None: a single-task run) first."""
    lines = [json.dumps({"task": name, "input": ex.input, "target": ex.target, "where": ex.where,
                         "messages": None if ex.messages is None else list(ex.messages)}, ensure_ascii=False)
             for name, examples in tasks for ex in examples]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def read_examples_file(path: str | Path) -> dict[str | None, list[Example]]:
    """Task name → its examples, in the file's order; an unreadable line is one CheckpointError naming it."""
    out: dict[str | None, list[Example]] = {}
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            ex = Example(d["input"], d["target"], d["where"], None if d["messages"] is None else tuple(d["messages"]))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path}, line {n}: not a saved example ({e})") from None
        out.setdefault(d.get("task"), []).append(ex)
    return out
