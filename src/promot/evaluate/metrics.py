"""What a fine-tune cost, from lm-eval results: 0-100 task scores, the paper's Norm. Avg., deltas against the base,
format leakage and per-example flips. Pure functions over plain dicts (no torch), so the report can use them."""
from __future__ import annotations

import re
import string
from dataclasses import dataclass

# lm-eval metrics reported as fractions (scaled ×100 here); BLEU/chrF/TER already come on a 0-100 scale.
_FRACTION_METRICS = ("acc", "acc_norm", "exact_match", "em", "f1", "mcc", "rouge1", "rouge2", "rougeL", "rougeLsum",
                     "contains", "accuracy")
_PREFERRED = ("exact_match", "acc", "rouge2", "bleu", "f1", "acc_norm", "chrf")
_PUNCT = str.maketrans("", "", string.punctuation)


def primary_metric(task_result: dict) -> tuple[str, float]:
    """(metric key, score on 0-100) for one task's lm-eval result block."""
    keys = [k for k in task_result if "," in k and "_stderr" not in k and isinstance(task_result[k], (int, float))]
    if not keys:
        raise ValueError(f"no metric in {sorted(task_result)}")
    keys.sort(key=lambda k: next((i for i, p in enumerate(_PREFERRED) if k.split(",")[0] == p), len(_PREFERRED)))
    key = keys[0]
    value = float(task_result[key])
    return key, value * 100 if key.split(",")[0] in _FRACTION_METRICS else value


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
        words = text.translate(_PUNCT).lower().split()
        return bool(words) and words[0] in {label.lower() for label in self.labels}

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
