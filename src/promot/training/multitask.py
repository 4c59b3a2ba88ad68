"""A run's tasks: every run trains N ≥ 1 of them, a single-task run being N = 1 (its task is the config's `data`).
Multi-task ProMoT (paper Table 5): one soft prompt per task, a stage-2 mixture in which every example carries its
own task's frozen prompt. The multi-task fine-tuning baseline is the same mixture with no prompts.

Stage 1 trains each task's prompt alone (the model is frozen, so the tasks cannot interact). Stage 2 trains the
model on the mixture with a prompt bank [T, P, H] (`PromptedLM`, `task_ids` per example); checkpoints are selected
by the mean target score over the tasks, each scored with its own prompt.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from promot.data import Example, Tokenizing
from promot.evaluate.target import target_score
from promot.prompt import PromptedLM


@dataclass
class TaskTarget:
    """One task of the run: what stage 1 trains its prompt on (its rows) and what selection scores it with (its
    validation examples, how they tokenize, its metric). A single-task run's one task has no name."""

    name: str | None
    index: int
    tokenizing: Tokenizing
    validation: list[Example]
    metric: str
    max_new_tokens: int
    rows: list[dict] = field(default_factory=list)
    """The task's tokenized training rows."""


def mixing_weights(sizes: list[int], mode: str, temperature: float = 2.0,
                   explicit: list[float | None] | None = None) -> list[float]:
    """Share of stage-2 examples per task: proportional to sizes, sizes^(1/T) (T5's temperature mixing), or given."""
    if mode == "explicit":
        raw = [float(w) for w in explicit or []]
    elif mode == "temperature":
        raw = [n ** (1.0 / temperature) for n in sizes]
    else:
        raw = [float(n) for n in sizes]
    total = sum(raw)
    return [w / total for w in raw]


def stage2_examples(cfg) -> int:
    """Examples stage 2 draws in all: steps × per-device batch × grad_accum × processes (the size of a mixture)."""
    from promot.distributed import num_processes

    st = cfg.stage2
    return st.steps * st.batch_size * st.grad_accum * num_processes()


def mixture(rows: list[list[dict]], weights: list[float], n: int, seed: int) -> list[dict]:
    """n rows drawn task-by-weight, each task's rows in a seeded shuffled cycle; every row gets its `task_id`."""
    rng = random.Random(seed)
    orders = [rng.sample(range(len(r)), len(r)) for r in rows]
    cursor = [0] * len(rows)
    out = []
    for t in rng.choices(range(len(rows)), weights=weights, k=n):
        if cursor[t] == len(orders[t]):
            orders[t], cursor[t] = rng.sample(range(len(rows[t])), len(rows[t])), 0
        out.append({**rows[t][orders[t][cursor[t]]], "task_id": t})
        cursor[t] += 1
    return out


def mean_target_score(lm: PromptedLM, targets: list[TaskTarget], batch_size: int, bf16: bool,
                      limit: int | None = None) -> float:
    """Mean over tasks of the target score, each task generated with its own prompt (the bank's row `t.index`; a
    single prompt serves its one task)."""
    scores = []
    for t in targets:
        examples = t.validation[:limit] if limit else t.validation
        scores.append(target_score(lm, t.tokenizing, examples, t.metric, t.max_new_tokens, batch_size, bf16, t.index))
    return sum(scores) / len(scores)
