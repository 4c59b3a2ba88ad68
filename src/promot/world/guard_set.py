"""The world's guard requests: what the leakage guard asks the bare world model at each selection step.

Generic requests for a model whose only language is the world's are its ICL tasks' one-shot episodes: 7 per task,
drawn from the suite's training files (the final evaluation scores the test files). `promot demo` points
`guard.data` at the shipped guard.jsonl; `python -m promot.world.guard_set` writes it again.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from promot.evaluate.suites import suite_dir

GUARD_SET = Path(__file__).parent / "guard.jsonl"
PER_TASK = 7


def guard_requests(per_task: int = PER_TASK) -> list[str]:
    """`in: x out: y ; in: x' out:` for the first 2·per_task training rows of each ICL task in the `world` group."""
    suite = suite_dir("world")
    tasks = yaml.safe_load((suite / "world.yaml").read_text())["task"]
    out = []
    for task in tasks:
        name = task.removeprefix("world_")
        lines = (suite / "data" / f"{name}.train.jsonl").read_text().splitlines()[: 2 * per_task]
        rows = [json.loads(line) for line in lines]
        out += [f"{shot['question']} {shot['answer']} ; {query['question']}" for shot, query in zip(rows[::2], rows[1::2])]
    return out


def write(path: Path = GUARD_SET) -> None:
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in guard_requests()))


if __name__ == "__main__":
    write()
