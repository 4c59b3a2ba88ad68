"""Per-document ROUGE-2 F1 for the paper's summarization tasks (offline `rouge_score`; `evaluate.load` needs the Hub)."""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rouge2"], use_stemmer=True)


def _rouge2(doc: dict, results: list[str], target_field: str) -> dict[str, float]:
    prediction = (results[0] if results else "").strip()
    return {"rouge2": _scorer().score(doc[target_field].strip(), prediction)["rouge2"].fmeasure}


def rouge2_xsum(doc: dict, results: list[str]) -> dict[str, float]:
    return _rouge2(doc, results, "summary")


def rouge2_wikilingua(doc: dict, results: list[str]) -> dict[str, float]:
    return _rouge2(doc, results, "target")
