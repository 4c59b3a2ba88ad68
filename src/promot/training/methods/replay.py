"""Replay (methods replay, promot-replay): stage-2 batches mix the target task with other data at
`replay.fraction` — general text, earlier tasks: anything promot can read (`replay:` is a data section). Replay
examples carry no prompt: ProMoT's prompt stands for the target's format, and the replayed data is what the bare
model should keep doing. Like LLaMA-Factory's `interleave_probs`, each example's source is drawn by probability.
Its settings and their checks: promot/methods/replay.py."""
from __future__ import annotations

from promot.training.methods.base import Addon


class Replay(Addon):
    name = "replay"

    def stage2_rows(self, rows, cfg, tokenizer, seq2seq):
        from promot.data import load_task_data
        from promot.data import Tokenizing
        from promot.training.multitask import mixture, stage2_examples

        data = load_task_data(cfg.replay, tokenizer, cfg.seed, hold_out=False)
        replay = Tokenizing.for_data(cfg.replay, tokenizer, seq2seq, data.chat).encode_all(data.train)
        f = cfg.replay.fraction
        mixed = mixture([rows, replay], [1 - f, f], stage2_examples(cfg), cfg.seed)
        return [{**{k: v for k, v in r.items() if k != "task_id"}, "prompt_mask": r["task_id"] == 0} for r in mixed]


REPLAY = Replay()
