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
    no lm-eval task holds that data. None for multi-task runs (each task has its own prompt) or when a run written
    before validation.jsonl can no longer read its data."""
    import logging

    from promot.data import Tokenizing
    from promot.rundir import read_run_info
    from promot.runs import run_inputs, run_validation

    record = read_run_info(run_dir)
    if record.tasks:
        return None
    inputs = run_inputs(run_dir, record)
    examples = run_validation(run_dir, record, variants[0][2]).get(None)
    if not examples:
        logging.getLogger(__name__).warning("no own-data target score for %s (its data is unreadable from here)",
                                            run_dir)
        return None
    chat = record.trained_in_chat(inputs.chat_template)
    out = {"metric": record.target_metric, "scores": {}, "n": len(examples)}
    for name, lm, tok in variants:
        steps = Tokenizing.for_data(inputs, tok, bool(lm.is_seq2seq), chat)
        out["scores"][name] = target_score(lm, steps, examples, record.target_metric, inputs.max_new_tokens,
                                           batch_size, bf16)
    return out
