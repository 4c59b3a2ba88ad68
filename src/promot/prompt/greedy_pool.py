"""Greedy continuations of many requests at once, the way an evaluation pass needs them.

HF `generate` runs one batch until its slowest row stops, and re-encodes for every row the prefixes rows share (a
chat template's system turn, the soft prompt, a task's exemplar turn). On a CPU both cost: a decode step costs nearly the same for 4 rows as
for 16 (the weights are read once per step), and prefill is compute-bound (docs/RESULTS.md, "Where `promot eval`'s
time goes"). This pool, written by hand because neither transformers' `generate` nor lm-eval's HFLM has it:
- encodes each prefix requests share once, before any row (`prefix_tree` plans them), and starts each row from a
  copy of its prefix's key/value cache;
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
from promot.prompt.prefix_tree import prefix_tree
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

    def compact(self) -> None:
        """Move each row's real positions to the right end and drop the columns no row uses: after a prefill the
        padding between a row's prefix and its text (and in front of a shorter prefix) would otherwise be carried,
        and attended over, at every decode step."""
        width = int(self.mask.sum(-1).max())
        if width == self.mask.shape[1]:
            return
        keep = torch.argsort(self.mask, dim=1, stable=True)[:, -width:]  # padding first, then the row's own order
        self.mask = torch.gather(self.mask, 1, keep)
        for layer in self.cache.layers:
            index = keep[:, None, :, None]
            layer.keys = torch.gather(layer.keys, 2, index.expand(-1, layer.keys.shape[1], -1, layer.keys.shape[3]))
            layer.values = torch.gather(layer.values, 2,
                                        index.expand(-1, layer.values.shape[1], -1, layer.values.shape[3]))

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
        self.active = [r for r, req in enumerate(self.requests) if req.max_new > 0]
        self.tree = prefix_tree([self.seqs[r] for r in self.active])
        self.shared = len(self.tree.nodes[0])
        """Tokens every request starts with, leaving each at least one of its own (its logits come from it)."""
        self.node = {r: self.tree.start[i] for i, r in enumerate(self.active)}
        self.users = self.tree.users()
        self.out: list[list[int]] = [[] for _ in self.requests]
        self._kv: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        """Each computed node's own positions (after its parent's), per layer: keys and values [1, heads, n, d]."""

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

    def _chain(self, node: int) -> list[int]:
        """The nodes whose cached positions make up `node`'s prefix, root first (an empty root holds none)."""
        chain = []
        while node > 0 or (node == 0 and self.shared):
            chain.append(node)
            node = self.tree.parent[node]
        return chain[::-1]

    def _extend(self, nodes: list[int], suffixes: list[list[int]]):
        """Prefill each suffix after its node's cached prefix, the prefixes left-padded to the longest (masked):
        the batch's cache, mask and last logits."""
        from transformers import DynamicCache

        chains = [self._chain(n) for n in nodes]
        lengths = [len(self.tree.nodes[n]) for n in nodes]
        width, longest = max(map(len, suffixes)), max(lengths)
        cache = DynamicCache(config=self.model.config)
        if longest:
            for i, layer in enumerate(cache.layers):
                parts = [[self._kv[c][i] for c in chain] for chain in chains]
                keys, values = (self._rows([[kv[j] for kv in p] for p in parts], longest) for j in (0, 1))
                layer.lazy_initialization(keys, values)
                layer.keys, layer.values = keys, values
        seqs = [[self.pad_id] * (width - len(s)) + list(s) for s in suffixes]
        mask = torch.tensor([[0] * (longest - n) + [1] * n + [0] * (width - len(s)) + [1] * len(s)
                             for n, s in zip(lengths, suffixes)], dtype=torch.long, device=self.device)
        return cache, mask, self._forward(seqs, mask, cache, longest)

    @staticmethod
    def _rows(parts: list[list[torch.Tensor]], longest: int) -> torch.Tensor:
        """Each row's pieces [1, heads, n, d] joined, left-padded to `longest`, stacked: [B, heads, longest, d]."""
        like = next(p[0] for p in parts if p)
        return torch.cat([_left_pad(torch.cat(p, 2) if p else like[:, :, :0], longest - sum(x.shape[2] for x in p))
                          for p in parts])

    def _prefill_tree(self) -> None:
        """Every shared prefix once, before any row: the root alone, then the others in batches after their parents."""
        from transformers import DynamicCache

        root = list(self.tree.nodes[0])
        if root:
            cache = DynamicCache(config=self.model.config)
            self._forward([root], torch.ones(1, len(root), dtype=torch.long, device=self.device), cache, 0)
            self._kv[0] = [(layer.keys, layer.values) for layer in cache.layers]
        for wave in self.tree.waves(self.batch_size):
            parents = [self.tree.parent[n] for n in wave]
            own = [self.tree.nodes[n][len(self.tree.nodes[p]):] for n, p in zip(wave, parents)]
            cache, _, _ = self._extend(parents, own)
            for row, (node, ext) in enumerate(zip(wave, own)):
                self._kv[node] = [(layer.keys[row:row + 1, :, -len(ext):].clone(),
                                   layer.values[row:row + 1, :, -len(ext):].clone()) for layer in cache.layers]

    def _start(self, rows: list[int]) -> _Batch:
        """Prefill `rows` after their shared prefixes: their first new token, as a batch ready to decode. A prefix's
        cache is dropped once every request below it has started."""
        nodes = [self.node[r] for r in rows]
        own = [self.seqs[r][len(self.tree.nodes[n]):] for r, n in zip(rows, nodes)]
        cache, mask, logits = self._extend(nodes, own)
        for node in nodes:
            for c in self._chain(node):
                self.users[c] -= 1
                if not self.users[c]:
                    self._kv.pop(c, None)
        batch = _Batch(cache, mask, mask.sum(-1), logits.argmax(-1), list(rows))
        batch.compact()
        return batch

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
        if not self.active:
            return self.out
        waiting = deque(self.active[i] for i in self.tree.order([self.seqs[r] for r in self.active]))
        self._prefill_tree()
        batch: _Batch | None = None
        while waiting or (batch is not None and batch.rows):
            size = 0 if batch is None else len(batch.rows)
            if waiting and size <= self.batch_size // 2:  # refill: a prefill of at least half a batch
                rows = [waiting.popleft() for _ in range(min(self.batch_size - size, len(waiting)))]
                fresh = self._start(rows)
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
