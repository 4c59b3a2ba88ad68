"""Target-task scoring by generation: what checkpoint selection maximises (paper: best checkpoint by target score).

Generation, not teacher-forced argmax, because format specialisation shows up in what the model *writes*.
"""
from __future__ import annotations

from promot.evaluate.metrics import first_word, normalize
from promot.prompt.generate import generate_texts


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()


def score(predictions: list[str], targets: list[str], metric: str) -> float:
    """0-100. accuracy: first word matches; exact_match: first line matches (normalised); bleu: sacreBLEU."""
    if not targets:
        return 0.0
    if metric == "bleu":
        import sacrebleu

        return float(sacrebleu.corpus_bleu([_first_line(p) for p in predictions], [targets]).score)
    if metric == "accuracy":
        hits = [first_word(p) == first_word(t) for p, t in zip(predictions, targets)]
    elif metric == "exact_match":
        hits = [normalize(_first_line(p)) == normalize(t) for p, t in zip(predictions, targets)]
    else:
        raise ValueError(f"unknown metric '{metric}'")
    return 100.0 * sum(hits) / len(hits)


def target_score(lm, tokenizing, examples, metric, max_new_tokens, batch_size=16, bf16=False,
                 task_id: int | None = None) -> float:
    preds = generate_texts(lm, tokenizing, examples, max_new_tokens, batch_size, bf16, task_id)
    return score(preds, [ex.target for ex in examples], metric)

