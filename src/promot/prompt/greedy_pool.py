"""Greedy continuations of many requests at once, the way an evaluation pass needs them.

HF `generate` runs one batch until its slowest row stops, and re-encodes for every row a prefix all rows share (a
chat template's system turn, the soft prompt). On a CPU both cost: a decode step costs nearly the same for 4 rows as
for 16 (the weights are read once per step), and prefill is compute-bound (docs/RESULTS.md, "Where `promot eval`'s
time goes"). This pool, written by hand because neither transformers' `generate` nor lm-eval's HFLM has it:
- encodes the prefix every request shares once, and starts each row from a copy of its key/value cache;
- drops a row from the batch the step it stops (a stop string in its text, an EOS id, or its token budget);
- refills the freed slots with waiting requests, so the decode steps run on full batches.

Rows then hold padding in the middle of their cache (prefix | pad | text); the attention mask hides it and position
ids count real tokens only, so every row sees what it would see alone. The tokens are the ones greedy `generate`
gives, up to float rounding in a differently blocked matmul (the test compares generations item for item).
Models whose cache is not a plain growing one (sliding windows, linear attention) are refused: `supports` says so,
and callers keep `generate` for them.
"""
from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from promot.distributed import gathered
from promot.prompt.soft_prompt import PromptedLM, plain_model, prompt_order

_LOGITS_PROCESSING = ("repetition_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "bad_words_ids",
                      "min_length", "min_new_tokens", "suppress_tokens", "begin_suppress_tokens", "forced_bos_token_id",
                      "forced_eos_token_id", "sequence_bias", "exponential_decay_length_penalty")
"""generation_config fields that change greedy decoding's logits: a model that sets any of them keeps `generate`."""


@dataclass(frozen=True)
class Request:
    ids: Sequence[int]
    """The context's token ids, unpadded (the soft prompt is added here, where `PromptedLM` puts it)."""
    max_new: int
    stops: tuple[str, ...] = ()
    """Stop strings: the row stops once its decoded continuation contains one (the text is cut there later)."""


def supports(lm: PromptedLM) -> bool:
    """Can the pool serve this model: causal, one prompt (or a bank of one), plain full-attention cache, plain
    greedy."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    if lm.is_seq2seq or (lm.prompt is not None and lm.prompt.dim() == 3 and lm.prompt.shape[0] > 1):
        return False
    params = inspect.signature(plain_model(lm.model).forward).parameters  # the pool passes these by name
    loose = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())  # cache_position, in transformers 5
    if not ({"position_ids", "logits_to_keep"} <= set(params) and ("cache_position" in params or loose)):
        return False
    config = getattr(lm.model, "generation_config", None)
    if config is not None and any(getattr(config, f, None) not in (None, 0, 1.0, [], {}) for f in _LOGITS_PROCESSING):
        return False
    try:
        cache = DynamicCache(config=lm.model.config)
    except (TypeError, ValueError):
        return False
    return all(type(layer) is DynamicLayer for layer in cache.layers)


def eos_ids(lm: PromptedLM) -> set[int]:
    """The ids `generate` stops a row on: the model's generation_config EOS."""
    eos = getattr(getattr(lm.model, "generation_config", None), "eos_token_id", None)
    return set() if eos is None else set(eos if isinstance(eos, list | tuple) else [eos])


class _Batch:
    """The rows being decoded: their cache, mask and next positions, and which request each row serves."""

    def __init__(self, cache, mask: torch.Tensor, positions: torch.Tensor, last: torch.Tensor, rows: list[int]):
        self.cache, self.mask, self.positions, self.last, self.rows = cache, mask, positions, last, rows

    def keep(self, index: list[int]) -> None:
        idx = torch.tensor(index, dtype=torch.long, device=self.mask.device)
        for layer in self.cache.layers:
            layer.keys, layer.values = layer.keys[idx], layer.values[idx]
        self.mask, self.positions, self.last = self.mask[idx], self.positions[idx], self.last[idx]
        self.rows = [self.rows[i] for i in index]

    def join(self, other: _Batch) -> None:
        """Append `other`'s rows; the shorter cache is padded on the left (masked)."""
        a, b = self.mask.shape[1], other.mask.shape[1]
        for mine, theirs in zip(self.cache.layers, other.cache.layers):
            k1, v1, k2, v2 = _left_pad(mine.keys, b - a), _left_pad(mine.values, b - a), \
                _left_pad(theirs.keys, a - b), _left_pad(theirs.values, a - b)
            mine.keys, mine.values = torch.cat([k1, k2]), torch.cat([v1, v2])
        mask1 = torch.nn.functional.pad(self.mask, (max(0, b - a), 0))
        mask2 = torch.nn.functional.pad(other.mask, (max(0, a - b), 0))
        self.mask = torch.cat([mask1, mask2])
        self.positions = torch.cat([self.positions, other.positions])
        self.last = torch.cat([self.last, other.last])
        self.rows += other.rows


def _left_pad(x: torch.Tensor, n: int) -> torch.Tensor:
    """[B, heads, L, d] → [B, heads, n + L, d] with zeros in front (n ≤ 0: unchanged)."""
    return x if n <= 0 else torch.nn.functional.pad(x, (0, 0, n, 0))


class GreedyPool:
    """Greedy decoding of `requests` with `batch_size` rows in flight; `run()` returns each request's new tokens."""

    def __init__(self, lm: PromptedLM, tokenizer, requests: Sequence[Request], batch_size: int,
                 eos: set[int] | None = None) -> None:
        """`eos`: the ids a row stops on (default: the model's generation_config EOS, as `generate`'s default)."""
        self.lm, self.tok, self.requests, self.batch_size = lm, tokenizer, list(requests), max(1, batch_size)
        self.model = lm.model
        self.device = next(lm.parameters()).device
        self.eos = eos_ids(lm) if eos is None else eos
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        slots = [-1 - j for j in range(lm.num_virtual_tokens)]  # prompt slot j as the id -1-j
        self.seqs = [prompt_order(slots, list(r.ids), lm.bos_id) if slots else list(r.ids) for r in self.requests]
        self.shared = self._shared_prefix()
        self.out: list[list[int]] = [[] for _ in self.requests]

    def _shared_prefix(self) -> int:
        """Tokens every request starts with, leaving each at least one of its own (its logits come from it)."""
        if not self.seqs:
            return 0
        first, n = self.seqs[0], min(len(s) for s in self.seqs) - 1
        for s in self.seqs[1:]:
            n = min(n, next((i for i, (x, y) in enumerate(zip(first, s)) if x != y), n))
        return max(0, n)

    def _embed(self, seqs: list[list[int]]) -> torch.Tensor:
        """Sequences of ids (prompt slots as -1-j) → embeddings [B, L, H]; the pad id's embedding where padded."""
        ids = torch.tensor(seqs, dtype=torch.long, device=self.device)
        embeds = self.model.get_input_embeddings()(ids.clamp(min=0))
        if self.lm.prompt is not None and (ids < 0).any():
            prompt = self.lm.task_prompt().to(embeds.dtype)
            slot = (-1 - ids).clamp(min=0, max=prompt.shape[0] - 1)
            embeds = torch.where((ids < 0).unsqueeze(-1), prompt[slot], embeds)
        return embeds

    def _forward(self, seqs: list[list[int]], mask: torch.Tensor, cache, start: int) -> torch.Tensor:
        """One forward of `seqs` [B, L] after `start` cached slots; the last position's logits [B, V]."""
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)[:, start:]
        length = len(seqs[0])
        kwargs = {"attention_mask": mask, "position_ids": positions, "past_key_values": cache, "use_cache": True,
                  "cache_position": torch.arange(start, start + length, device=self.device), "logits_to_keep": 1}
        if self.lm.prompt is not None and any(i < 0 for s in seqs for i in s):
            out = self.model(inputs_embeds=self._embed(seqs), **kwargs)
        else:
            out = self.model(input_ids=torch.tensor(seqs, dtype=torch.long, device=self.device), **kwargs)
        return out.logits[:, -1, :].float()

    def _prefix_cache(self):
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        if self.shared:
            mask = torch.ones(1, self.shared, dtype=torch.long, device=self.device)
            self._forward([self.seqs[0][: self.shared]], mask, cache, 0)
        return cache

    def _start(self, rows: list[int], prefix) -> _Batch:
        """Prefill `rows` from a copy of the prefix cache: their first new token, as a batch ready to decode."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        if self.shared:
            for mine, shared in zip(cache.layers, prefix.layers):
                mine.lazy_initialization(shared.keys, shared.values)
                mine.keys = shared.keys.expand(len(rows), -1, -1, -1).clone()
                mine.values = shared.values.expand(len(rows), -1, -1, -1).clone()
        rests = [self.seqs[r][self.shared:] for r in rows]
        width = max(map(len, rests))
        seqs = [[self.pad_id] * (width - len(s)) + s for s in rests]
        mask = torch.tensor([[1] * self.shared + [0] * (width - len(s)) + [1] * len(s) for s in rests],
                            dtype=torch.long, device=self.device)
        logits = self._forward(seqs, mask, cache, self.shared)
        positions = mask.long().sum(-1)
        return _Batch(cache, mask, positions, logits.argmax(-1), list(rows))

    def _finished(self, row: int) -> bool:
        new, req = self.out[row], self.requests[row]
        if len(new) >= req.max_new or new[-1] in self.eos:
            return True
        if not req.stops:
            return False
        text = self.tok.decode(new, skip_special_tokens=False)
        return any(s and s in text for s in req.stops)

    def _record(self, batch: _Batch) -> None:
        """Append each row's new token; drop the rows that stopped."""
        live = []
        for i, (row, token) in enumerate(zip(batch.rows, batch.last.tolist())):
            self.out[row].append(token)
            if not self._finished(row):
                live.append(i)
        if len(live) < len(batch.rows):
            batch.keep(live)

    @torch.no_grad()
    def run(self) -> list[list[int]]:
        """Every request's new tokens, in the requests' order; longest contexts first, as HFLM orders them."""
        with gathered(self.lm):  # FSDP2: the prompt and the embeddings are used outside the root's forward
            return self._run()

    def _run(self) -> list[list[int]]:
        waiting = deque(sorted(range(len(self.requests)), key=lambda r: -len(self.seqs[r])))
        waiting = deque(r for r in waiting if self.requests[r].max_new > 0)
        if not waiting:
            return self.out
        prefix = self._prefix_cache()
        batch: _Batch | None = None
        while waiting or (batch is not None and batch.rows):
            size = 0 if batch is None else len(batch.rows)
            if waiting and size <= self.batch_size // 2:  # refill: a prefill of at least half a batch
                rows = [waiting.popleft() for _ in range(min(self.batch_size - size, len(waiting)))]
                fresh = self._start(rows, prefix)
                self._record(fresh)
                if batch is None or not batch.rows:
                    batch = fresh
                elif fresh.rows:
                    batch.join(fresh)
                continue
            start = batch.mask.shape[1]
            batch.mask = torch.cat([batch.mask, batch.mask.new_ones(len(batch.rows), 1)], dim=1)
            positions = batch.positions.unsqueeze(1)
            kwargs = {"attention_mask": batch.mask, "position_ids": positions, "past_key_values": batch.cache,
                      "use_cache": True, "cache_position": torch.tensor([start], device=self.device),
                      "logits_to_keep": 1}
            logits = self.model(input_ids=batch.last.unsqueeze(1), **kwargs).logits[:, -1, :].float()
            batch.positions = batch.positions + 1
            batch.last = logits.argmax(-1)
            self._record(batch)
        return self.out
