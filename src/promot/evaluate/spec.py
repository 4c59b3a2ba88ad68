"""What `promot eval` (and `compare`) evaluates, and how: `EvalSpec`, the options that describe it and their one set
of defaults (`spec_from_options`'s signature: the CLI's defaults are read from it). Torch-free: `promot --help`
builds the options without loading the evaluator."""
from __future__ import annotations

import argparse
import inspect
from collections.abc import Sequence
from dataclasses import dataclass

from promot.errors import ConfigError
from promot.evaluate.metrics import AnswerFormat
from promot.options import check, non_negative_int, positive_int, shot_counts


@dataclass
class EvalSpec:
    tasks: list[str]
    shots: list[int]
    limit: int | None = None
    include_path: list[str] | None = None
    batch_size: int = 16
    bf16: bool | str = "auto"
    """bf16 autocast: true, false, or auto (where this machine runs bf16 natively)."""
    target_tasks: tuple[str, ...] = ()
    """Tasks in the fine-tuned format: scored, but left out of Norm. Avg. and leakage."""
    fmt: AnswerFormat | None = None
    """The fine-tuned format; default: the label set of the run's training targets (when it has ≤ 20 values)."""
    target_shots: int = 0
    """Shots for the target tasks, whatever `shots` says: a fine-tuned task is scored as it was trained (paper:
    0-shot); k-shot exemplars in front of a soft prompt's input are not what the prompt was tuned for."""
    apply_chat_template: bool = False
    """lm-eval's option: each request in the tokenizer's chat template, as an instruct model is used."""
    fewshot_as_multiturn: bool = False
    """lm-eval's option (with apply_chat_template): each exemplar as its own user/assistant turn."""
    bootstrap: int = 1000
    """Resamples for the paired-bootstrap 95% CIs of every delta and of leakage (0: no CIs)."""


def _items(value: str | Sequence | None) -> list[str]:
    """A comma-separated string (`"1,4"`) or a sequence → its non-empty items, stripped."""
    parts = (value or "").split(",") if isinstance(value, str) or value is None else value
    return [str(t).strip() for t in parts if str(t).strip()]


def spec_from_options(tasks: str | Sequence[str] = "mini", suite: str | None = None, shots: str | Sequence[int] = "1,4",
                      target_tasks: str | Sequence[str] = "", target_shots: int = 0, limit: int | None = None,
                      include_path: list[str] | None = None, labels: str | Sequence[str] | None = None,
                      format_regex: str | None = None, batch_size: int = 16, bf16: bool | str = "auto",
                      apply_chat_template: bool = False, fewshot_as_multiturn: bool = False,
                      bootstrap: int = 1000) -> EvalSpec:
    """The EvalSpec `promot eval`'s options describe (same defaults), checked before anything runs. Lists may be
    given as comma-separated strings. `suite` (mini, world, paper) means its ICL tasks and its fine-tuning targets
    (`<suite>_target`) instead of `tasks`; `labels` or `format_regex` set the fine-tuned format for leakage."""
    fmt = None
    if format_regex or labels:
        fmt = AnswerFormat(tuple(labels.split(",") if isinstance(labels, str) else labels) if labels else (),
                           format_regex)
    if fewshot_as_multiturn and not apply_chat_template:
        raise ConfigError("--fewshot-as-multiturn needs --apply-chat-template (lm-eval's rule)")
    shots = check("--shots", shot_counts, shots)
    limit = None if limit is None else check("--limit", positive_int, limit)
    target_shots = check("--target-shots", non_negative_int, target_shots)
    batch_size = check("--batch-size", positive_int, batch_size)
    bootstrap = check("--bootstrap", non_negative_int, bootstrap)
    if not suite and not _items(tasks):
        raise ConfigError("--tasks: name at least one lm-eval task (or give --suite)")
    return EvalSpec(tasks=[suite, f"{suite}_target"] if suite else _items(tasks),
                    shots=shots, limit=limit, include_path=include_path,
                    batch_size=batch_size, bf16=bf16, target_tasks=tuple(_items(target_tasks)), fmt=fmt,
                    target_shots=target_shots, apply_chat_template=apply_chat_template,
                    fewshot_as_multiturn=fewshot_as_multiturn, bootstrap=bootstrap)


_DEFAULTS = {name: p.default for name, p in inspect.signature(spec_from_options).parameters.items()}


def add_eval_options(p: argparse.ArgumentParser) -> None:
    """What to evaluate and how (`promot eval`, `promot compare`); defaults are spec_from_options's."""
    d = _DEFAULTS
    p.add_argument("--tasks", default=d["tasks"], help="comma-separated lm-eval tasks/groups/tags (default: "
                   "%(default)s, the offline suite); `paper` is the paper's eight tasks (needs their datasets)")
    p.add_argument("--suite", help="a shipped suite (mini, world, paper): its ICL tasks and its fine-tuning targets "
                   "(<suite>_target), instead of --tasks")
    p.add_argument("--target-task", dest="target_tasks", default=d["target_tasks"], help="comma-separated tasks in "
                   "the fine-tuned format: the headline target, kept out of Norm. Avg. and leakage (e.g. mini_has_a; "
                   "default: the suite's fine-tuning targets whose data the run trained on)")
    p.add_argument("--shots", type=shot_counts, default=d["shots"], help="comma-separated shot counts "
                   "(default %(default)s)")
    p.add_argument("--target-shots", type=non_negative_int, default=d["target_shots"],
                   help="shots for the target tasks, scored as trained (default %(default)s, as in the paper)")
    p.add_argument("--limit", type=positive_int, default=d["limit"], help="at most this many items per task")
    p.add_argument("--include-path", action="append", help="extra folder of lm-eval task YAMLs (repeatable)")
    p.add_argument("--labels", help="comma-separated label set of the fine-tuned format, for leakage "
                   "(default: the run's training targets)")
    p.add_argument("--format-regex", help="regex an answer in the fine-tuned format matches (instead of --labels)")
    p.add_argument("--batch-size", type=positive_int, default=d["batch_size"])
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=d["bf16"],
                   help="bf16 autocast (default: %(default)s, where this machine runs bf16 natively; else fp32)")
    p.add_argument("--apply-chat-template", action="store_true",
                   help="each request in the tokenizer's chat template (lm-eval's option; for instruct models)")
    p.add_argument("--fewshot-as-multiturn", action="store_true",
                   help="with --apply-chat-template: each exemplar its own user/assistant turn (lm-eval's option)")
    p.add_argument("--bootstrap", type=non_negative_int, default=d["bootstrap"],
                   help="paired-bootstrap resamples for the 95%% CIs of every delta and leakage (0: none)")


def spec_from_args(args: argparse.Namespace) -> EvalSpec:
    """`add_eval_options`'s parsed values → the EvalSpec (the same checks as for Python callers)."""
    return spec_from_options(**{name: getattr(args, name) for name in _DEFAULTS})
