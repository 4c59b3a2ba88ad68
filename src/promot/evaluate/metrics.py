"""What a fine-tune cost, from lm-eval results: 0-100 task scores, the paper's Norm. Avg., deltas against the base,
format leakage and per-example flips. Pure functions over plain dicts (no torch), so the report can use them."""
from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass

from promot.eval_record import VariantSummary

# How an lm-eval score reaches 0-100 (Norm. Avg. averages scores on one scale), in this order:
# 1. sacrebleu's corpus scores are 0-100 by definition;
# 2. otherwise what the per-item values show: all within [0, 1] (0/1 hits, booleans as IFEval's, pass@k) → ×100;
# 3. no per-item values (corpus-level metrics): a metric known to be a fraction, or a value within [0, 1] → ×100.
# What is still unknown, and every lower-is-better metric (declared by the task's `higher_is_better`, or known
# below), is reported as it is and kept out of Norm. Avg., with a warning.
_PERCENT_METRICS = ("bleu", "sacrebleu", "chrf", "chrf++", "ter")
_FRACTION_METRICS = ("acc", "acc_norm", "exact_match", "em", "f1", "mcc", "rouge1", "rouge2", "rougeL", "rougeLsum",
                     "contains", "accuracy")
_LOWER_IS_BETTER = ("ter", "perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte", "wer", "cer",
                    "brier_score", "loss")
_PREFERRED = ("exact_match", "acc", "rouge2", "bleu", "f1", "acc_norm", "chrf")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    """The one answer normalisation: lower case, no punctuation, single spaces. Checkpoint selection's accuracy
    and format leakage both compare through it, so a label counts the same way in both."""
    return " ".join(text.lower().translate(_PUNCT).split())


def first_word(text: str) -> str:
    words = normalize(text).split()
    return words[0] if words else ""


@dataclass(frozen=True)
class TaskScore:
    """One task's headline metric: its value on 0-100 when `averaged` (it counts in Norm. Avg.), else as lm-eval
    reported it, with `note` saying why it is kept out."""

    metric: str
    score: float
    averaged: bool = True
    note: str | None = None


def _item_values(samples: list[dict] | None, name: str) -> list[float]:
    values = [s.get(name) for s in samples or []]
    return [float(v) for v in values if isinstance(v, (int, float))] if values else []


def metric_scale(name: str, value: float | None = None, samples: list[dict] | None = None) -> float | None:
    """×100 or ×1 to put metric `name` on 0-100 (see the rules above); None when nothing says which."""
    if name in _PERCENT_METRICS:
        return 1.0
    items = _item_values(samples, name)
    if items:
        return 100.0 if all(0.0 <= v <= 1.0 for v in items) else None
    if name in _FRACTION_METRICS or (value is not None and 0.0 <= value <= 1.0):
        return 100.0
    return None


def task_score(task_result: dict, higher_is_better: dict | None = None, samples: list[dict] | None = None) -> TaskScore:
    """The headline metric of one task's lm-eval result block, on 0-100. `higher_is_better`: lm-eval's per-task
    declaration ({metric: bool}); `samples`: the task's logged samples (what the per-item values show)."""
    keys = [k for k in task_result if "," in k and "_stderr" not in k and isinstance(task_result[k], (int, float))
            and not isinstance(task_result[k], bool)]
    if not keys:
        raise ValueError(f"no metric in {sorted(task_result)}")
    declared = higher_is_better or {}

    def lower(key: str) -> bool:
        name = key.split(",")[0]
        return declared[name] is False if name in declared else name in _LOWER_IS_BETTER

    keys.sort(key=lambda k: (lower(k), next((i for i, p in enumerate(_PREFERRED) if k.split(",")[0] == p),
                                            len(_PREFERRED))))
    key, name = keys[0], keys[0].split(",")[0]
    value = float(task_result[key])
    if lower(key):
        return TaskScore(key, value, False, f"{name} is lower-is-better: reported as is, kept out of Norm. Avg.")
    scale = metric_scale(name, value, samples)
    if scale is None or not math.isfinite(value):
        return TaskScore(key, value, False, f"{name}={value:g} has no known 0-100 scale: reported as is, kept out "
                                            "of Norm. Avg.")
    return TaskScore(key, value * scale)


def primary_metric(task_result: dict, higher_is_better: dict | None = None,
                   samples: list[dict] | None = None) -> tuple[str, float]:
    """(metric key, score) for one task's lm-eval result block: `task_score` without the verdict."""
    t = task_score(task_result, higher_is_better, samples)
    return t.metric, t.score


def norm_avg(scores: dict[str, float]) -> float:
    """The paper's 'Norm. Avg.': the plain mean of 0-100 task scores (no chance-level subtraction)."""
    return sum(scores.values()) / len(scores) if scores else 0.0


@dataclass(frozen=True)
class AnswerFormat:
    """The fine-tuned task's output format: its label set, or a regex. An answer 'leaks' when it fits."""

    labels: tuple[str, ...] = ()
    regex: str | None = None

    def matches(self, answer: str) -> bool:
        text = answer.strip()
        if self.regex is not None:
            return re.fullmatch(self.regex, text.split("\n", 1)[0].strip()) is not None
        word = first_word(text)
        return bool(word) and word in {first_word(label) for label in self.labels}

    @classmethod
    def from_targets(cls, targets) -> AnswerFormat | None:
        """A classification task's label set (≤ 20 distinct targets); None for open-ended targets."""
        labels = sorted(set(targets))
        return cls(tuple(labels)) if len(labels) <= 20 else None

    @property
    def describe(self) -> str:
        return f"/{self.regex}/" if self.regex else "{" + ", ".join(self.labels) + "}"


def leakage(answers: list[str], fmt: AnswerFormat) -> float:
    """Fraction of generated answers that fall in the fine-tuned task's format (paper: '90% True/False')."""
    return sum(fmt.matches(a) for a in answers) / len(answers) if answers else 0.0


def sample_answer(sample: dict) -> str:
    """The generated text of an lm-eval logged sample (generate_until tasks)."""
    resp = sample.get("filtered_resps") or sample.get("resps") or [""]
    while isinstance(resp, list):
        resp = resp[0] if resp else ""
    return str(resp)


def sample_correct(sample: dict, metric: str) -> bool:
    return float(sample.get(metric.split(",")[0], 0.0)) > 0


def flips(base: list[dict], tuned: list[dict], metric: str) -> list[dict]:
    """Examples right under the base model and wrong after tuning, with both generations."""
    tuned_by_id = {s["doc_id"]: s for s in tuned}
    out = []
    for b in base:
        t = tuned_by_id.get(b["doc_id"])
        if t is not None and sample_correct(b, metric) and not sample_correct(t, metric):
            out.append({"doc_id": b["doc_id"], "input": b["arguments"][0][0] if b.get("arguments") else "",
                        "target": b.get("target"), "base": sample_answer(b), "tuned": sample_answer(t)})
    return out


def item_scores(samples: list[dict], metric: str) -> list[float] | None:
    """Per-item scores on the task's 0-100 scale, in doc_id order; None for corpus-level metrics (BLEU's samples
    hold tuples, not scores), which have no per-item paired bootstrap."""
    name = metric.split(",")[0]
    values = [s.get(name) for s in sorted(samples, key=lambda s: s.get("doc_id", 0))]
    if not values or not all(isinstance(v, (int, float)) for v in values):
        return None
    scale = metric_scale(name, None, samples)
    return None if scale is None else [float(v) * scale for v in values]


def _quantiles(stats, lo: float = 2.5, hi: float = 97.5) -> list[float]:
    import numpy as np

    return [float(np.percentile(stats, lo)), float(np.percentile(stats, hi))]


def paired_bootstrap(base: dict[str, list[float]], tuned: dict[str, list[float]], iters: int = 1000,
                     seed: int = 0) -> dict[str, list[float]]:
    """95% CIs of tuned − base per task and of the Norm. Avg. delta, resampling the same items for both (paired)
    and each task on its own (stratified: Norm. Avg. is a mean of per-task means). Written here because
    scipy.stats.bootstrap has no stratified multi-task statistic."""
    import numpy as np

    rng = np.random.default_rng(seed)
    tasks = [t for t in tuned if t in base and len(base[t]) == len(tuned[t]) and tuned[t]]
    per_task = {}
    for t in tasks:
        diff = np.asarray(tuned[t]) - np.asarray(base[t])
        idx = rng.integers(0, len(diff), size=(iters, len(diff)))
        per_task[t] = diff[idx].mean(axis=1)
    out = {t: _quantiles(v) for t, v in per_task.items()}
    if per_task:
        out["norm_avg"] = _quantiles(np.mean(list(per_task.values()), axis=0))
    return out


def proportion_ci(hits: list[int], iters: int = 1000, seed: int = 0) -> list[float]:
    """95% bootstrap CI of a share (leakage): the items resampled, as for the deltas."""
    import numpy as np

    if not hits:
        return [0.0, 0.0]
    x = np.asarray(hits, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(x), size=(iters, len(x)))
    return _quantiles(x[idx].mean(axis=1))


def contrast(a: VariantSummary, b: VariantSummary, iters: int = 1000) -> dict[str, list[float] | float]:
    """Method A − method B on the same items, from two eval.json summaries of one variant at one shot count
    (e.g. ProMoT's and plain fine-tuning's `tuned`): Norm. Avg. and leakage differences with paired 95% CIs."""
    out: dict = {"norm_avg": a.norm_avg - b.norm_avg,
                 "norm_avg_ci": paired_bootstrap(b.icl_items, a.icl_items, iters).get("norm_avg")}
    if a.leak_hits is not None and b.leak_hits is not None:
        out["leakage"] = a.leakage - b.leakage
        ci = paired_bootstrap({"x": [100.0 * h for h in b.leak_hits]}, {"x": [100.0 * h for h in a.leak_hits]},
                              iters).get("x")
        out["leakage_ci"] = None if ci is None else [c / 100 for c in ci]
    return out


def crossing_step(points: list[tuple[int, float]], level: float = 0.5) -> float | None:
    """Where a share (leakage) measured at training steps would pass `level` if its current trend went on: a
    least-squares line in logit space (format collapse is S-shaped) through the later half of the points, since a
    curve that rose and then levelled off (the loss reached ~0 and the steps shrank) is not heading anywhere. None
    when that trend is not rising."""
    import math

    recent = sorted(points)[len(points) // 2:] if len(points) >= 4 else sorted(points)
    xs = [s for s, _ in recent]
    ys = [math.log(p / (1 - p)) for p in (min(max(v, 0.01), 0.99) for _, v in recent)]
    if len(recent) < 2 or len(set(xs)) < 2:
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    if slope <= 1e-9:
        return None
    return mx + (math.log(level / (1 - level)) - my) / slope
