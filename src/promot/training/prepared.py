"""A run prepared to train: what `prepare` loaded and validated (config, method, model, tokenizer, data, initial
prompt), and nothing written yet. Its own module so that what reads it (stage2_watch.py) need not import the
pipeline that makes it."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from promot.config import RunConfig
from promot.data import Example, TaskData, Tokenizing
from promot.training.methods import Method


@dataclass
class Prepared:
    """Everything a run needs, loaded and validated; nothing written yet."""

    cfg: RunConfig
    method: Method
    source: str
    model: torch.nn.Module
    tokenizer: object
    tokenizing: Tokenizing
    data: TaskData
    rows: list[dict]
    base_fingerprint: str
    prompt: torch.Tensor | None
    carried: dict = dataclasses.field(default_factory=dict)
    """Earlier runs' prompts (sequential training, `model.init_from`), re-saved under prompts/<name>/."""
    tasks: list = dataclasses.field(default_factory=list)
    """Multi-task: one TaskTarget per task (prompt[i] is task i's), and each task's own training rows."""
    task_rows: list = dataclasses.field(default_factory=list)
    stage2_rows: list | None = None
    """What stage 2 trains on: `rows`, or the rows a method's add-on made of them (replay mixes other data in);
    None for multi-task runs, whose `rows` already are the stage-2 mixture."""
    guard_requests: list[Example] | None = None
    """The leakage guard's generic requests (None: the guard is off)."""
