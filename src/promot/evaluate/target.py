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



def own_target(run_dir, variants, batch_size: int = 16, bf16: bool = False) -> dict | None:
    """`promot eval`'s score on the run's own validation data (what selection maximised), for every variant
    [(name, lm, tokenizer)]: the only target score a run trained on your own file (a conversation, say) has, since
    no lm-eval task holds that data. None for multi-task runs (each task has its own prompt) or unreadable data."""
    import logging
    from pathlib import Path

    from promot import rundir
    from promot.config import load_config
    from promot.data import Tokenizing, load_task_data
    from promot.errors import PromotError

    cfg = load_config(Path(run_dir) / rundir.CONFIG)
    if cfg.tasks:
        return None
    out = {"metric": cfg.eval.metric, "scores": {}}
    for name, lm, tok in variants:
        try:
            data = load_task_data(cfg.data, tok, cfg.seed)
        except PromotError as e:  # e.g. a relative data path from another working directory
            logging.getLogger(__name__).warning("no own-data target score for %s (%s)", run_dir, e)
            return None
        examples, steps = data.validation, Tokenizing.for_data(cfg.data, tok, bool(lm.is_seq2seq), data.chat)
        out["scores"][name] = target_score(lm, steps, examples, cfg.eval.metric, cfg.eval.max_new_tokens,
                                           batch_size, bf16)
        out["n"] = len(examples)
    return out
