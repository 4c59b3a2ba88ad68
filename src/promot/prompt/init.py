"""Soft-prompt initialisations. Each returns a float32 [P, H] tensor in the space of the model's input embeddings
(after any embedding scaling, e.g. Gemma's sqrt(H)), so the prompt looks like tokens to the first layer."""
from __future__ import annotations

import re

import torch

from promot.errors import ConfigError

# Lester et al. sample prompt tokens from the most frequent vocabulary; low BPE ids approximate that.
_VOCAB_SAMPLE_RANGE = 5000


def _embed(model: torch.nn.Module, ids: list[int]) -> torch.Tensor:
    emb = model.get_input_embeddings()
    device = emb.weight.device
    with torch.no_grad():
        return emb(torch.tensor([ids], device=device))[0].float().cpu()


# Markup, not words: `<unused12>`, `<start_of_image>`, byte fallbacks `<0x0A>`, `[unused3]`, `[PAD]`.
_MARKUP = re.compile(r"^(<[^<>]+>|\[[^\[\]]+\])$")


def ordinary_ids(tokenizer, limit: int = _VOCAB_SAMPLE_RANGE) -> list[int]:
    """Ids below `limit` of ordinary text tokens: no special or added tokens and nothing markup-shaped (gemma's
    first ids are mostly `<unusedN>` and byte tokens, whose untrained embeddings make a poor starting prompt)."""
    skip = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    ids = [i for i in range(min(len(tokenizer), limit)) if i not in skip]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    return [i for i, t in zip(ids, tokens) if t and t.strip() and not _MARKUP.match(t)]


def _vocab_ids(tokenizer, length: int, generator: torch.Generator) -> list[int]:
    pool = ordinary_ids(tokenizer)
    if not pool:
        raise ConfigError("prompt.init vocab: the tokenizer has no ordinary tokens to sample; use uniform or text")
    picks = torch.randint(len(pool), (length,), generator=generator)
    return [pool[i] for i in picks.tolist()]


def init_prompt(
    kind: str, length: int, model: torch.nn.Module, tokenizer, text: str | None = None, seed: int = 0
) -> torch.Tensor:
    """`vocab` | `uniform` (U[0, 0.5), the paper's code base) | `text` | `normal` (N(0, std of embeddings))."""
    g = torch.Generator().manual_seed(seed)
    hidden = model.get_input_embeddings().weight.shape[1]
    if kind == "uniform":
        return torch.rand(length, hidden, generator=g) * 0.5
    if kind == "vocab":
        return _embed(model, _vocab_ids(tokenizer, length, g))
    if kind == "text":
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids = (ids * (length // max(len(ids), 1) + 1))[:length]
        return _embed(model, ids)
    if kind == "normal":
        std = _embed(model, _vocab_ids(tokenizer, 256, g)).std().item()
        return torch.randn(length, hidden, generator=g) * std
    raise ValueError(f"unknown prompt init '{kind}'")


def row_norm(rows: torch.Tensor) -> float:
    """Mean L2 norm of the rows of [N, H], in float32 whatever the dtype (no float32 copy of a bf16 vocabulary)."""
    return float(torch.linalg.vector_norm(rows, dim=-1, dtype=torch.float32).mean())


def prompt_scale(prompt: torch.Tensor, embeddings: torch.Tensor) -> float:
    """The prompt's mean row norm ÷ the vocabulary's mean embedding row norm ([P, H] vs [V, H]). A `vocab` prompt
    starts near 1. On SmolLM2, stage 1 at the paper's T5 lr (0.3) ended at 7-11× and ProMoT then failed (stage 2
    learned the target in 1 seed of 3); at lr 0.03 it ended at 1.3× and ProMoT kept ICL in every seed (RESULTS,
    "The real-model question with seeds"). The world demo's prompt ends at ~21× and works: a diagnostic, no rule."""
    return row_norm(prompt) / row_norm(embeddings)
