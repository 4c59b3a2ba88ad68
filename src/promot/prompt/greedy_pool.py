"""Greedy continuations of many requests at once, the way an evaluation pass needs them.

HF `generate` runs one batch until its slowest row stops, and re-encodes for every row a prefix all rows share (a
chat template's system turn, the soft prompt). On a CPU both cost: a decode step costs nearly the same for 4 rows as
for 16 (the weights are read once per step), and prefill is compute-bound (docs/RESULTS.md, "Where `promot eval`'s
time goes"). This pool, written by hand because neither transformers' `generate` nor lm-eval's HFLM has it:
- encodes the prefix every request shares once, and starts each row from a copy of its key/value cache;
- prefills a batch's texts as tries packed into a few sequences under a 4D mask, so what several rows share beyond
  that (a few-shot exemplar, a task's instruction) is encoded once too;
- drops a row from the batch the step it stops (a stop string in its text, an EOS id, or its token budget);
- prefills a whole batch of waiting requests at a time and parks them, filling every freed slot from them before
  the next step, so the decode steps run on full batches and the prefills on large ones;
- runs the decode steps' linear layers with the weights first (`promot.prompt.weights_first`), the faster layout.

Rows then hold padding in the middle of their cache (prefix | pad | text); the attention mask hides it and position
ids count real tokens only, so every row sees what it would see alone. The tokens are the ones greedy `generate`
gives, up to float rounding in a differently blocked matmul (the test compares generations item for item).
Models whose cache is not a plain growing one (sliding windows, linear attention), or whose attention takes no 4D
mask (flash, flex), are refused: `supports` says so, and callers keep `generate` for them.
"""
from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from promot.distributed import gathered
from promot.prompt.pool_batch import (
    Batch,
    attention_scale,
    gather,
    growing_cache,
    pack_tries,
    tree_mask,
)
from promot.prompt.soft_prompt import PromptedLM, plain_model, prompt_order
from promot.prompt.weights_first import weights_first

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
    """Can the pool serve this model: causal, one prompt (or a bank of one), attention that takes a 4D mask (sdpa,
    eager), plain full-attention cache, plain greedy."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    if lm.is_seq2seq or (lm.prompt is not None and lm.prompt.dim() == 3 and lm.prompt.shape[0] > 1):
        return False
    if getattr(lm.model.config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return False  # flash and flex attention take no custom 4D mask, which the packed prefill needs
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
        self.attention_scale = attention_scale(plain_model(lm.model))
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

    def _attention(self, seen: torch.Tensor) -> torch.Tensor:
        """A 4D mask [B, 1, queries, keys] (True: attend) as the model's attention takes it; transformers passes a 4D
        mask through untouched, and eager attention adds it to its scores, so it gets 0 or the dtype's minimum."""
        if self.model.config._attn_implementation != "eager":
            return seen
        dtype = self.model.dtype
        return torch.zeros(seen.shape, dtype=dtype, device=seen.device).masked_fill_(~seen, torch.finfo(dtype).min)

    def _forward(self, seqs: list[list[int]], mask: torch.Tensor, cache, start: int, positions: torch.Tensor,
                 keep: int | torch.Tensor = 1) -> torch.Tensor:
        """One forward of `seqs` [B, L] after `start` cached slots; the logits `keep` selects, as float."""
        length = len(seqs[0])
        kwargs = {"attention_mask": mask, "position_ids": positions, "past_key_values": cache, "use_cache": True,
                  "cache_position": torch.arange(start, start + length, device=self.device), "logits_to_keep": keep}
        if self.lm.prompt is not None and any(i < 0 for s in seqs for i in s):
            out = self.model(inputs_embeds=self._embed(seqs), **kwargs)
        else:
            out = self.model(input_ids=torch.tensor(seqs, dtype=torch.long, device=self.device), **kwargs)
        return out.logits.float()

    def _prefix_cache(self):
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        if self.shared:
            mask = torch.ones(1, self.shared, dtype=torch.long, device=self.device)
            positions = torch.arange(self.shared, device=self.device).unsqueeze(0)
            self._forward([self.seqs[0][: self.shared]], mask, cache, 0, positions)
        return cache

    def _copied(self, prefix, n: int):
        """A cache of `n` rows, each a copy of the prefix cache."""
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        if self.shared:
            for mine, shared in zip(cache.layers, prefix.layers):
                mine.lazy_initialization(shared.keys, shared.values)
                mine.keys = shared.keys.expand(n, -1, -1, -1).clone()
                mine.values = shared.values.expand(n, -1, -1, -1).clone()
        return cache

    def _start(self, rows: list[int], prefix) -> Batch:
        """Prefill `rows` after the prefix: their first new token, as a batch ready to decode.

        The rows' texts go in as tries packed into a few long sequences, so a part several rows share (a few-shot
        exemplar, a task's instruction) is encoded once; a 4D mask lets each token see the prefix and its own
        ancestors only, and each row's cache is then gathered from its path through the trie."""
        from transformers import DynamicCache

        packs = pack_tries([self.seqs[r][self.shared:] for r in rows], self.shared, self.attention_scale)
        count, width, start = len(packs), max(len(p.tokens) for p in packs), self.shared
        seen, depths = tree_mask(packs, width)
        mask = torch.cat([torch.ones(count, width, start, dtype=torch.bool), seen], -1).unsqueeze(1)
        in_pack = torch.tensor([i for i, p in enumerate(packs) for _ in p.ends])
        end = torch.tensor([e for p in packs for e in p.ends])
        keep = torch.zeros(count, width, dtype=torch.bool)
        keep[in_pack, end] = True
        cache = self._copied(prefix, count)
        seqs = [p.tokens + [self.pad_id] * (width - len(p.tokens)) for p in packs]
        logits = self._forward(seqs, self._attention(mask.to(self.device)), cache, start, (start + depths).to(self.device),
                               keep.to(self.device))
        first = (keep.flatten().cumsum(0) - 1)[in_pack * width + end]  # kept positions come packed row by row
        last = logits.reshape(-1, logits.shape[-1])[first.to(self.device)].argmax(-1)
        # each row's cache: the prefix, padding, then its path's slots (in order: a node follows its ancestors)
        path = seen[in_pack, end]
        lengths = path.sum(-1)
        longest = int(lengths.max())
        slots = torch.argsort(path.long(), dim=-1, stable=True)[:, width - longest:]
        base = (in_pack * (start + width)).unsqueeze(1)
        index = torch.cat([base + torch.arange(start), base + start + slots], -1).flatten().to(self.device)
        rows_cache = DynamicCache(config=self.model.config)
        for mine, packed in zip(rows_cache.layers, cache.layers):
            keys, values = (gather(x, index, len(end)) for x in (packed.keys, packed.values))
            mine.lazy_initialization(keys, values)
            mine.keys, mine.values = keys, values
        row_mask = torch.cat([torch.ones(len(end), start, dtype=torch.long),
                              (torch.arange(longest) >= longest - lengths.unsqueeze(1)).long()], -1).to(self.device)
        return Batch(rows_cache, row_mask, row_mask.sum(-1), last, [rows[j] for p in packs for j in p.rows])

    def _finished(self, row: int) -> bool:
        new, req = self.out[row], self.requests[row]
        if len(new) >= req.max_new or new[-1] in self.eos:
            return True
        if not req.stops:
            return False
        text = self.tok.decode(new, skip_special_tokens=False)
        return any(s and s in text for s in req.stops)

    def _record(self, batch: Batch) -> list[int]:
        """Append each row's new token; the slots whose row stopped."""
        stopped = []
        for i, (row, token) in enumerate(zip(batch.rows, batch.last.tolist())):
            self.out[row].append(token)
            if self._finished(row):
                stopped.append(i)
        return stopped

    @torch.no_grad()
    def run(self) -> list[list[int]]:
        """Every request's new tokens, in the requests' order. Requests start in the order of their tokens, so rows
        that share a few-shot exemplar or an instruction prefill together and share its encoding."""
        # FSDP2: the prompt and the embeddings are used outside the root's forward
        with gathered(self.lm), weights_first(self.model):
            return self._run()

    def _run(self) -> list[list[int]]:
        from transformers import DynamicCache

        waiting = deque(sorted(range(len(self.requests)), key=lambda r: self.seqs[r]))
        waiting = deque(r for r in waiting if self.requests[r].max_new > 0)
        if not waiting:
            return self.out
        prefix = self._prefix_cache()
        batch: Batch | None = None
        ready: Batch | None = None  # rows prefilled ahead, waiting for a free slot
        stopped: list[int] = []  # slots of the batch whose row stopped: refilled in place, or dropped at the end
        while True:
            free = len(stopped) + self.batch_size - (0 if batch is None else len(batch.rows))
            if free and waiting and (ready is None or not ready.rows):  # a whole batch prefilled at once
                ready = self._start([waiting.popleft() for _ in range(min(self.batch_size, len(waiting)))], prefix)
                done = set(self._record(ready))
                if done:
                    ready.keep([i for i in range(len(ready.rows)) if i not in done])
                continue
            if free and ready is not None and ready.rows:  # every free slot filled before the next decode step
                fresh = ready.take(min(free, len(ready.rows)), growing_cache(self.model.config))
                if batch is None:
                    batch = fresh
                else:  # into the stopped rows' slots first (no copy of the batch), then appended
                    n = min(len(stopped), len(fresh.rows))
                    if n:
                        batch.place(stopped[:n], fresh.take(n, DynamicCache(config=self.model.config)))
                        stopped = stopped[n:]
                    if fresh.rows:
                        batch.join(fresh)
                continue
            if stopped:  # nothing left to fill them with
                batch.keep([i for i in range(len(batch.rows)) if i not in set(stopped)])
                stopped = []
            if batch is None or not batch.rows:
                return self.out
            batch.trim()
            start = batch.mask.shape[1]
            batch.mask = torch.cat([batch.mask, batch.mask.new_ones(len(batch.rows), 1)], dim=1)
            positions = batch.positions.unsqueeze(1)
            kwargs = {"attention_mask": batch.mask, "position_ids": positions, "past_key_values": batch.cache,
                      "use_cache": True, "cache_position": torch.tensor([start], device=self.device),
                      "logits_to_keep": 1}
            logits = self.model(input_ids=batch.last.unsqueeze(1), **kwargs).logits[:, -1, :].float()
            batch.positions = batch.positions + 1
            batch.last = logits.argmax(-1)
            stopped = self._record(batch)
