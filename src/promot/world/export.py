"""Exports the world's tasks as the `world` lm-eval suite (YAML + JSONL), so `promot eval --tasks world` works.

Deterministic: re-running writes byte-identical files. Episode-defined tasks get one fixed random mapping for the
whole suite (drawn with the suite's seed, so it is one the model never had to memorise: pretraining draws a fresh
one per episode); lm-eval's few-shot demonstrations come from the `train` split under that same mapping.
The targets also get `validation` (checkpoint selection) and a larger `train` split (what `promot train` fits).
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from promot.world.tasks import EVAL_CLASSIFY_PAIR, ICL_TASKS, TARGET_TASKS, WorldTask, classify_state, episode, render

FEWSHOT_POOL, TEST_ITEMS = 32, 100
REPLAY_EPISODES, REPLAY_MAX_SHOTS = 1000, 4
TARGET_SPLITS = {"train": 2000, "validation": 64, "test": 100}
SEED = 20261123

COMMON = """\
# Shared settings of every world task (no .yaml suffix, so lm-eval's indexer doesn't treat it as a task).
# Written by `promot world export`; data: data/<dataset_kwargs.name>.<split>.jsonl, read offline by loader.load.
custom_dataset: !function loader.load
output_type: generate_until
training_split: train
fewshot_split: train
test_split: test
doc_to_text: "{{question}}"
doc_to_target: "{{answer}}"
target_delimiter: " "
fewshot_delimiter: " ; "
generation_kwargs:
  until: [";"]
  max_gen_toks: 10
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    regexes_to_ignore: ["^\\\\s+", "\\\\s+$"]
"""


def _state(task: WorldTask, rng: random.Random) -> dict:
    if task.name == "classify":
        return classify_state(rng, [EVAL_CLASSIFY_PAIR])
    return task.new_state(rng)


def _rows(task: WorldTask, rng: random.Random, state: dict, n: int, seen: set[str] | None) -> list[dict]:
    """n examples; with `seen`, only inputs not seen before (target splits stay disjoint: no memorised test item).
    ICL tasks may repeat inputs: a demonstration that shows the query's answer is what ICL is about."""
    rows = []
    while len(rows) < n:
        x, y = task.make(rng, state)
        if seen is not None:
            if x in seen:
                continue
            seen.add(x)
        rows.append({"question": render(task, (x, y), with_answer=False), "answer": y})
    return rows


def replay_rows(n: int = REPLAY_EPISODES, seed: str = f"{SEED}-replay") -> list[dict]:
    """The world's general data for the replay methods: pretraining-like k-shot episodes (a random ICL task, 1-4
    demonstrations, a fresh mapping each, as `world pretrain` draws them) as question/answer records."""
    rng = random.Random(seed)
    tasks = list(ICL_TASKS.values())
    rows = []
    for _ in range(n):
        task = rng.choice(tasks)
        *shots, (x, y) = episode(rng, task, rng.randint(1, REPLAY_MAX_SHOTS))
        demos = " ; ".join(render(task, ex) for ex in shots)
        rows.append({"question": f"{demos} ; {render(task, (x, y), with_answer=False)}", "answer": y})
    return rows


def _yaml(task: WorldTask, target: bool) -> str:
    lines = [f"# {task.name}: answer format {task.answer_format}", "include: _world_common_yaml",
             f"task: world_{task.name}"]
    if target:
        lines += ["tag: world_target", "validation_split: validation"]
    lines += ["dataset_kwargs:", f"  name: {task.name}", "metadata:", "  version: 1.0"]
    if target:
        lines += ["  fine_tuning_target: true   # scored at --target-shots, outside Norm. Avg. and leakage"]
        if task.name == "true_false":
            lines += ["  answer_format: label", '  labels: ["true", "false"]']
    return "\n".join(lines) + "\n"


def export_suite(out: str | Path) -> list[Path]:
    """Write the suite into `out` (a folder lm-eval's include_path can point at); return the files written."""
    out = Path(out)
    (out / "data").mkdir(parents=True, exist_ok=True)
    files: dict[Path, str] = {out / "_world_common_yaml": COMMON}
    for name, task in {**ICL_TASKS, **TARGET_TASKS}.items():
        rng = random.Random(f"{SEED}-{name}")
        target = name in TARGET_TASKS
        state, seen = _state(task, rng), (set() if target else None)
        splits = TARGET_SPLITS if target else {"train": FEWSHOT_POOL, "test": TEST_ITEMS}
        for split in splits:
            rows = _rows(task, rng, state, splits[split], seen)
            files[out / "data" / f"{name}.{split}.jsonl"] = "".join(json.dumps(r) + "\n" for r in rows)
        files[out / f"world_{name}.yaml"] = _yaml(task, target)
    files[out / "data" / "replay.train.jsonl"] = "".join(json.dumps(r) + "\n" for r in replay_rows())
    group = ["# `tasks=[world]`: the world's ICL tasks (not its targets), plus a macro-average exact_match.",
             "group: world", "task:", *(f"  - world_{n}" for n in ICL_TASKS),
             "aggregate_metric_list:", "  - metric: exact_match", "    aggregation: mean",
             "    weight_by_size: false", "metadata:", "  version: 1.0"]
    files[out / "world.yaml"] = "\n".join(group) + "\n"
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
    return sorted(files)
