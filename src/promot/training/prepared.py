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
    data: TaskData
    rows: list[dict]
    base_fingerprint: str
    prompts: list[torch.Tensor] | None
    """Each task's initial prompt [P, H] (None: the method has none)."""
    carried: dict = dataclasses.field(default_factory=dict)
    """Earlier runs' prompts (sequential training, `model.init_from`), re-saved under prompts/<name>/."""
    tasks: list = dataclasses.field(default_factory=list)
    """The run's tasks (TaskTarget), N ≥ 1: a single-task run's one task is `data`; declared `tasks:` are several."""
    stage2_rows: list = dataclasses.field(default_factory=list)
    """What stage 2 trains on: `rows`, or the rows a method's add-on made of them (replay mixes other data in)."""
    guard_requests: list[Example] | None = None
    """The leakage guard's generic requests (None: the guard is off)."""

    def stage2_prompt(self, prompts: list[torch.Tensor] | None) -> torch.Tensor | None:
        """The prompt stage 2 attaches: a bank [N, P, H] of the N tasks' prompts, each example indexed by its task
        (a bank of one, a single-task run's, needs no index)."""
        return None if prompts is None else torch.stack(prompts)

    @property
    def tokenizing(self) -> Tokenizing:
        """How the first task's examples tokenize: a single-task run's one way (gradient alignment, a single-task
        probe, builds its batches with it); each task of several has its own (`tasks[i].tokenizing`)."""
        return self.tasks[0].tokenizing

    @property
    def prompt(self) -> torch.Tensor | None:
        """The initial prompt, as stage 2 would attach it."""
        return self.stage2_prompt(self.prompts)
