"""The config's combination rules, declared once as a table: each is a condition every valid config meets and the
line that says what is wrong when it does not. Types and ranges are declared elsewhere (validation.py: the fields'
types, `Literal` choices and `_RANGES`), and each method room declares its own settings' rules (`problems` in
promot/methods/); config.validate reports every broken one at once. No torch."""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from promot import methods

MAX_PROMPT_LENGTH = 4096
MULTI_TASK_METHODS = ("promot", "finetune", "prompt-tuning")


@dataclass(frozen=True)
class Rule:
    holds: Callable[..., bool]
    """Given the config: whether it meets the rule."""
    says: str | Callable[..., str]
    """The one line when it does not (a function of the config where the line names its values)."""

    def problem(self, cfg) -> str | None:
        if self.holds(cfg):
            return None
        return self.says(cfg) if callable(self.says) else self.says


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def _stage_rules(name: str) -> tuple[Rule, ...]:
    """stage1's and stage2's own rules."""
    stage = lambda c: getattr(c, name)  # noqa: E731
    return (Rule(lambda c: not stage(c).scale_parameter or stage(c).optimizer == "adafactor",
                 lambda c: f"{name}.scale_parameter is an Adafactor option (optimizer is {stage(c).optimizer})"),)


RULES: tuple[Rule, ...] = (
    Rule(lambda c: bool(c.model.name) or bool(c.model.init_from), "model.name (or model.init_from) is required"),
    Rule(lambda c: bool(c.data.train) or bool(c.tasks), "data.train (or tasks) is required"),
    Rule(lambda c: all(t.name for t in c.tasks) and len({t.name for t in c.tasks}) == len(c.tasks),
         "tasks[].name must be set and unique"),
    Rule(lambda c: all(t.data.train for t in c.tasks), "tasks[].data.train is required"),
    Rule(lambda c: c.mixing != "explicit" or all((t.weight or 0) > 0 for t in c.tasks),
         "mixing: explicit needs a positive tasks[].weight for every task"),
    Rule(lambda c: not c.tasks or c.method in MULTI_TASK_METHODS,
         f"multi-task training supports method {', '.join(MULTI_TASK_METHODS[:-1])} or {MULTI_TASK_METHODS[-1]}"),
    Rule(lambda c: not c.tasks or not c.monitor.alignment_every, "monitor.alignment_every is for single-task runs"),
    Rule(lambda c: c.method in methods.METHODS,
         lambda c: f"method '{c.method}' is not one of {', '.join(methods.METHODS)}"),
    Rule(lambda c: c.prompt.init != "text" or bool(c.prompt.init_text), "prompt.init 'text' needs prompt.init_text"),
    Rule(lambda c: isinstance(c.prompt.length, int) and c.prompt.length > 0,
         "prompt.length must be a positive integer"),
    Rule(lambda c: not isinstance(c.prompt.length, int) or c.prompt.length <= MAX_PROMPT_LENGTH,
         f"prompt.length must be at most {MAX_PROMPT_LENGTH} virtual tokens (the paper uses 50-100)"),
    Rule(lambda c: not c.data.packing and not any(t.data.packing for t in c.tasks),
         "data.packing is refused: each example needs its own soft prompt in front of it, and packed examples "
         "would share one and attend across example boundaries"),
    *_stage_rules("stage1"), *_stage_rules("stage2"),
    Rule(lambda c: c.guard.format_regex is None or (c.guard.format_regex != "" and _compiles(c.guard.format_regex)),
         lambda c: f"guard.format_regex is not a valid, non-empty regex: {c.guard.format_regex!r}"),
    Rule(lambda c: c.guard.data is None or c.guard.data.startswith("hf:") or Path(c.guard.data).is_file(),
         lambda c: f"guard.data: {c.guard.data}: file not found"),
)
"""Every combination rule of a well-typed config (bf16 is parsed, and checked against fp16, by validation)."""


def broken_rules(cfg) -> list[str]:
    """Every broken rule's line: the table's, then each method room's own settings' (promot/methods/)."""
    return [p for r in RULES if (p := r.problem(cfg)) is not None] + methods.problems(cfg)
