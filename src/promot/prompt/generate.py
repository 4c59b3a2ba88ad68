"""Inference with a soft prompt: greedy continuations of examples by a `PromptedLM`, batched. One home for
`promot generate`, `LoadedRun.generate`, checkpoint selection's target scoring and the world's probes."""
from __future__ import annotations

import contextlib

import torch

from promot.data import Example, Tokenizing, pad
from promot.prompt.greedy_pool import GreedyPool, Request, supports
from promot.prompt.soft_prompt import PromptedLM


def autocast(enabled: bool, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


@torch.no_grad()
def generate_texts(
    lm: PromptedLM,
    tokenizing: Tokenizing,
    examples: list[Example],
    max_new_tokens: int,
    batch_size: int = 16,
    bf16: bool = False,
    task_id: int | None = None,
    pool: bool = True,
) -> list[str]:
    """Greedy continuations, decoded without special tokens: through `GreedyPool` where it serves the model, else in
    batches of `generate` (left padding for causal LMs). `task_id` picks the prompt from a bank of several [T, P, H]
    (one prompt, or a bank of one, serves every task)."""
    tok = tokenizing.tokenizer
    device = next(lm.parameters()).device
    was_training = lm.training
    lm.eval()
    if pool and supports(lm):
        reqs = [Request(tokenizing.prompt_only(ex), max_new_tokens) for ex in examples]
        with autocast(bf16, device):
            stops = tokenizing.stop_ids()
            new = GreedyPool(lm, tok, reqs, batch_size, eos=None if stops is None else set(stops)).run()
        lm.train(was_training)
        return tok.batch_decode(new, skip_special_tokens=True)
    texts: list[str] = []
    side = "right" if lm.is_seq2seq else "left"
    for i in range(0, len(examples), batch_size):
        ids = [tokenizing.prompt_only(ex) for ex in examples[i : i + batch_size]]
        input_ids = pad(ids, tok.pad_token_id, side).to(device)
        mask = pad([[1] * len(s) for s in ids], 0, side).to(device)
        task_ids = None if task_id is None else torch.full((len(ids),), task_id, device=device)
        with autocast(bf16, device):
            out = lm.generate(
                input_ids, mask, task_ids, max_new_tokens=max_new_tokens, do_sample=False,
                pad_token_id=tok.pad_token_id, eos_token_id=tokenizing.stop_ids(),  # + a chat template's end of turn
            )
        texts += tok.batch_decode(out, skip_special_tokens=True)
    lm.train(was_training)
    return texts
