"""eval.json, typed: what `promot eval` writes and every reader (report, model card, frontier, benches) reads. No
torch. The two rules readers used to copy live here once: which variant serves the fine-tuned task (`serving`) and
which tasks are the ICL tasks that Norm. Avg. averages (`VariantSummary.icl_tasks`). Older eval.json files read with
defaults for the fields they lack."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from promot.errors import CheckpointError
from promot.rundir import EVAL

TUNED, PROMPTED, BASE = "tuned", "tuned+prompt", "base"
"""The variants every run has: the tuned model alone (serves every other task), with its prompt (serves the target)."""


@dataclass(frozen=True)
class TaskScore:
    metric: str
    score: float
    """0-100."""
    n: int
    note: str | None = None
    """Why the task is kept out of Norm. Avg. (its metric is corpus-level); None for the averaged tasks."""


@dataclass(frozen=True)
class VariantSummary:
    """One model variant at one shot count: per-task scores, Norm. Avg. over the ICL tasks, and format leakage."""

    tasks: dict[str, TaskScore]
    norm_avg: float
    target_tasks: tuple[str, ...] = ()
    """The headline target: the task the run trained."""
    other_format_tasks: tuple[str, ...] = ()
    """The suite's other fine-tuning formats: scored, kept out of Norm. Avg. and leakage like the target."""
    unaveraged_tasks: tuple[str, ...] = ()
    """Tasks without per-item scores (corpus-level metrics): shown, not averaged."""
    leakage: float | None = None
    """A 0-1 share of the ICL tasks' generated answers in the fine-tuned format (None: open-ended target)."""
    leakage_n: int = 0
    items: dict[str, list[float]] = field(default_factory=dict)
    """Per-item 0-100 scores of the averaged tasks, in document order: what every interval resamples."""
    leak_hits: tuple[int, ...] | None = None
    leakage_ci: tuple[float, float] | None = None

    @property
    def icl_tasks(self) -> list[str]:
        """The tasks Norm. Avg. averages: every task but the target, the target's other formats and the unaveraged."""
        outside = {*self.target_tasks, *self.other_format_tasks, *self.unaveraged_tasks}
        return [t for t in self.tasks if t not in outside]

    @property
    def icl_items(self) -> dict[str, list[float]]:
        return {t: self.items[t] for t in self.icl_tasks if t in self.items}

    @property
    def target_score(self) -> float | None:
        """The mean over the target tasks (None: there are none, or one was not evaluated)."""
        if not self.target_tasks or any(t not in self.tasks for t in self.target_tasks):
            return None
        return sum(self.tasks[t].score for t in self.target_tasks) / len(self.target_tasks)

    @classmethod
    def from_json(cls, data: dict) -> VariantSummary:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        kw["tasks"] = {t: TaskScore(**{k: v for k, v in s.items() if k in {"metric", "score", "n", "note"}})
                       for t, s in (data.get("tasks") or {}).items()}
        for key in ("target_tasks", "other_format_tasks", "unaveraged_tasks"):
            kw[key] = tuple(data.get(key) or ())
        for key in ("leak_hits", "leakage_ci"):
            kw[key] = None if data.get(key) is None else tuple(data[key])
        kw["items"] = dict(data.get("items") or {})
        return cls(**kw)


@dataclass(frozen=True)
class Delta:
    """One variant minus the base at one shot count, per task and in Norm. Avg. (`norm_avg`), with paired-bootstrap
    95% intervals where they were computed."""

    values: dict[str, float]
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict) -> Delta:
        return cls({k: v for k, v in data.items() if k != "ci"},
                   {k: tuple(v) for k, v in (data.get("ci") or {}).items() if v is not None})

    def to_json(self) -> dict:
        return {**self.values, **({"ci": {k: list(v) for k, v in self.ci.items()}} if self.ci else {})}


@dataclass(frozen=True)
class EvalRecord:
    """eval.json: the base and every variant of one run, per shot count (`"k=1"`), the deltas vs base, the score
    on the run's own validation data, and lm-eval's own result blocks (kept for comparison with lm-eval itself)."""

    base_model: str
    variants: dict[str, dict[str, VariantSummary]]
    deltas: dict[str, dict[str, Delta]] = field(default_factory=dict)
    tasks: tuple[str, ...] = ()
    shots: tuple[int, ...] = ()
    limit: int | None = None
    apply_chat_template: bool = False
    fewshot_as_multiturn: bool = False
    target_tasks: tuple[str, ...] = ()
    target_shots: int | None = None
    trained_data: tuple[str, ...] | None = None
    format: str | None = None
    """The fine-tuned format leakage was measured against, in words (None: open-ended target)."""
    own_target: dict | None = None
    lm_eval: dict = field(default_factory=dict)

    def summary(self, variant: str, k: str) -> VariantSummary | None:
        return self.variants.get(variant, {}).get(k)

    def serving(self, k: str) -> VariantSummary | None:
        """The variant that serves the fine-tuned task at k shots: the tuned model with its prompt where the run was
        evaluated with one, else the tuned model alone (None: no tuned variant at k)."""
        return self.summary(PROMPTED, k) or self.summary(TUNED, k)

    def delta(self, variant: str, k: str, key: str = "norm_avg") -> float | None:
        d = self.deltas.get(variant, {}).get(k)
        return None if d is None else d.values.get(key)

    def delta_ci(self, variant: str, k: str, key: str = "norm_avg") -> tuple[float, float] | None:
        d = self.deltas.get(variant, {}).get(k)
        return None if d is None else d.ci.get(key)

    @property
    def shot_keys(self) -> list[str]:
        """Every shot key of any variant, in first-seen order."""
        keys: list[str] = []
        for per_k in self.variants.values():
            keys += [k for k in per_k if k not in keys]
        return keys

    @classmethod
    def from_json(cls, data: dict) -> EvalRecord:
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        kw["base_model"] = str(data.get("base_model") or "")
        kw["variants"] = {n: {k: VariantSummary.from_json(s) for k, s in per_k.items()}
                          for n, per_k in (data.get("variants") or {}).items()}
        kw["deltas"] = {n: {k: Delta.from_json(d) for k, d in per_k.items()}
                        for n, per_k in (data.get("deltas") or {}).items()}
        for key in ("tasks", "shots", "target_tasks"):
            kw[key] = tuple(data.get(key) or ())
        if data.get("trained_data") is not None:
            kw["trained_data"] = tuple(data["trained_data"])
        kw["lm_eval"] = dict(data.get("lm_eval") or {})
        return cls(**kw)

    def to_json(self) -> dict:
        """eval.json's content: plain JSON types, as `json.loads` gives them back."""
        out = asdict(self)
        out["deltas"] = {n: {k: d.to_json() for k, d in per_k.items()} for n, per_k in self.deltas.items()}
        return json.loads(json.dumps(out))


def read_eval(run_dir: str | Path) -> EvalRecord | None:
    """RUN/eval.json as an EvalRecord, or None before `promot eval` ran; refused in one line when unreadable."""
    path = Path(run_dir) / EVAL
    if not path.is_file():
        return None
    try:
        return EvalRecord.from_json(json.loads(path.read_text()))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: invalid JSON ({e.msg}, line {e.lineno})") from None
    except (TypeError, AttributeError, KeyError) as e:
        raise CheckpointError(f"{path}: not a promot eval record ({e})") from None
