"""The rows a greedy pool decodes, and how a batch of them is prefilled (promot.prompt.greedy_pool runs them).

- `pack_tries`: a batch's texts as tries laid out in a few sequences, so a part several rows share is encoded once
  under a 4D mask; `attention_scale` weighs one long trie against several short ones.
- `Batch`: the decoding rows' cache, mask and positions; rows leave (`keep`), arrive in a stopped row's slot
  (`place`) or at the end (`join`), and slots no row attends to any more are cut (`trim`).
- `growing_cache`: a DynamicCache that grows into spare room, not by re-concatenating every layer each step.
Written by hand: transformers' caches have no packed prefill, in-place row refill or spare room.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch


def attention_scale(model) -> float:
    """The number of keys at which a query's attention costs what its matmuls do: ~4·keys·hidden FLOPs a layer
    against ~2·(weights per layer), so weights per layer / (2·hidden) (~3,000 for SmolLM2-135M)."""
    config = model.config.get_text_config()
    embeddings = {id(m.weight): m.weight.numel() for m in (model.get_input_embeddings(), model.get_output_embeddings())
                  if m is not None}
    body = sum(p.numel() for p in model.parameters()) - sum(embeddings.values())
    return max(1.0, body / (config.num_hidden_layers * 2 * config.hidden_size))


@dataclass
class Pack:
    """Rows' texts as one trie laid out in depth-first order: node k holds `tokens[k]` at `depths[k]` below the root,
    and its subtree is nodes k to `spans[k]` - 1; row `rows[j]` ends at node
    `ends[j]`. Texts must come in token order, so each one's new nodes follow every earlier subtree they leave."""

    tokens: list[int] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)
    spans: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    children: dict = field(default_factory=dict)

    def add(self, row: int, text: Sequence[int]) -> None:
        level, node, path = self.children, -1, []
        for depth, token in enumerate(text):
            if token not in level:
                level[token] = (len(self.tokens), {})
                self.tokens.append(token)
                self.depths.append(depth)
                self.spans.append(0)
            node, level = level[token]
            path.append(node)
        for k in path:
            self.spans[k] = len(self.tokens)
        self.ends.append(node)
        self.rows.append(row)


def pack_tries(texts: list[Sequence[int]], before: int, scale: float) -> list[Pack]:
    """Texts into groups (consecutive in token order), each group one trie, at the least estimated cost.

    A packed forward of P tries padded to W nodes after `before` cached slots costs ~P·W·(1 + (before + W) / scale):
    the matmuls per position, plus attention over every key (`scale` = weights per layer / (2·hidden), where the two
    are equal). One trie shares the most; several keep the quadratic attention small."""
    order = sorted(range(len(texts)), key=lambda i: list(texts[i]))
    texts = [texts[i] for i in order]
    lengths = [len(t) for t in texts]
    # what each text adds to a trie that already holds the text before it (in token order: its common prefix)
    adds = [lengths[0]] + [n - next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
                           for a, b, n in zip(texts, texts[1:], lengths[1:])]
    best, groups = None, []
    for count in range(1, len(texts) + 1):
        target = max(max(lengths), -(-sum(adds) // count))
        split, size = [[0]], lengths[0]
        for i in range(1, len(texts)):
            if size + adds[i] > target:
                split.append([i])
                size = lengths[i]
            else:
                split[-1].append(i)
                size += adds[i]
        width = max(lengths[g[0]] + sum(adds[i] for i in g[1:]) for g in split)
        cost = len(split) * width * (1 + (before + width) / scale)
        if best is None or cost < best:
            best, groups = cost, split
        if len(split) == len(texts):
            break  # every text on its own: more groups cannot change the split
    packs = []
    for group in groups:
        packs.append(Pack())
        for i in group:
            packs[-1].add(order[i], texts[i])
    return packs


def tree_mask(packs: list[Pack], width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Which node sees which ([P, W, W]: itself and its ancestors, i.e. the nodes whose subtree holds it; padding sees
    itself only), and every node's depth [P, W]."""
    spans = torch.arange(1, width + 1).repeat(len(packs), 1)
    depths = torch.zeros(len(packs), width, dtype=torch.long)
    for i, p in enumerate(packs):
        spans[i, : len(p.tokens)], depths[i, : len(p.tokens)] = torch.tensor(p.spans), torch.tensor(p.depths)
    node = torch.arange(width)
    seen = (node[None, None, :] <= node[None, :, None]) & (node[None, :, None] < spans[:, None, :])
    return seen, depths


def gather(x: torch.Tensor, index: torch.Tensor, rows: int) -> torch.Tensor:
    """[P, heads, S, d] → [rows, heads, len(index) / rows, d]: slot `index[j]` of the packed rows laid end to end."""
    flat = x.transpose(1, 2).reshape(-1, x.shape[1], x.shape[3])
    return flat.index_select(0, index).view(rows, -1, x.shape[1], x.shape[3]).transpose(1, 2).contiguous()


def appended(view: torch.Tensor, new: torch.Tensor, room: torch.Tensor | None, end: int):
    """`view` with `new` appended along the sequence axis, written into spare room of `room` when `view` is the slice
    of it that ends at `end`; else into a new room with space to spare. Returns (the grown view, room, new end)."""
    if room is not None and view._base is room and view.shape[0] == room.shape[0] and \
            (view.storage_offset() - room.storage_offset()) // room.stride(2) + view.shape[2] == end and \
            end + new.shape[2] <= room.shape[2]:
        start = end - view.shape[2]
    else:
        start, end = 0, view.shape[2]
        room = view.new_empty(view.shape[0], view.shape[1], end + new.shape[2] + max(64, end // 2), view.shape[3])
        room[:, :, :end] = view
    room[:, :, end: end + new.shape[2]] = new
    return room[:, :, start: end + new.shape[2]], room, end + new.shape[2]


class GrowingLayer:
    """Mixed into transformers' DynamicLayer: each step's keys and values go into spare room at the end of a buffer
    instead of `torch.cat` of the whole cache (a copy of it every decode step: 15-50% of a step on two cores,
    docs/RESULTS.md). `keys` and `values` stay slices of the buffer, so the pool's cuts and in-place writes apply."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized or self.keys.numel() == 0:
            return super().update(key_states, value_states, *args, **kwargs)
        rooms = getattr(self, "rooms", (None, None, 0, 0))
        self.keys, key_room, key_end = appended(self.keys, key_states, rooms[0], rooms[2])
        self.values, value_room, value_end = appended(self.values, value_states, rooms[1], rooms[3])
        self.rooms = (key_room, value_room, key_end, value_end)
        return self.keys, self.values


@functools.cache
def growing_layer() -> type:
    from transformers.cache_utils import DynamicLayer

    return type("GrowingDynamicLayer", (GrowingLayer, DynamicLayer), {})


def growing_cache(config):
    """A DynamicCache whose layers grow into spare room (the pool's decoding batch)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=config)
    cache.layers = [growing_layer()() for _ in cache.layers]
    return cache


class Batch:
    """The rows being decoded: their cache, mask and next positions, and which request each row serves."""

    def __init__(self, cache, mask: torch.Tensor, positions: torch.Tensor, last: torch.Tensor, rows: list[int]):
        self.cache, self.mask, self.positions, self.last, self.rows = cache, mask, positions, last, rows

    def keep(self, index: list[int]) -> None:
        """Only these rows (a copy of the cache)."""
        idx = torch.tensor(index, dtype=torch.long, device=self.mask.device)
        for layer in self.cache.layers:
            layer.keys, layer.values = layer.keys[idx], layer.values[idx]
        self.mask, self.positions, self.last = self.mask[idx], self.positions[idx], self.last[idx]
        self.rows = [self.rows[i] for i in index]

    def place(self, slots: list[int], other: Batch) -> None:
        """`other`'s rows into these slots (rows that stopped), written in place: right-aligned, masked on the left."""
        width, theirs = self.mask.shape[1], other.mask.shape[1]
        if theirs > width:
            self.grow(theirs - width)
            width = theirs
        idx = torch.tensor(slots, dtype=torch.long, device=self.mask.device)
        for mine, layer in zip(self.cache.layers, other.cache.layers):
            mine.keys[idx, :, width - theirs:] = layer.keys
            mine.values[idx, :, width - theirs:] = layer.values
        self.mask[idx] = 0
        self.mask[idx, width - theirs:] = other.mask
        self.positions[idx], self.last[idx] = other.positions, other.last
        for slot, row in zip(slots, other.rows):
            self.rows[slot] = row

    def grow(self, n: int) -> None:
        """n more masked slots on the left of every row (n ≤ 0: none)."""
        if n <= 0:
            return
        for layer in self.cache.layers:
            layer.keys = torch.nn.functional.pad(layer.keys, (0, 0, n, 0))
            layer.values = torch.nn.functional.pad(layer.values, (0, 0, n, 0))
        self.mask = torch.nn.functional.pad(self.mask, (n, 0))

    def trim(self) -> None:
        """Cut the leading slots no row attends to any more (the cache grows on the right, so rows that joined first
        leave padding behind them on the left). Views, no copy: the next step's cache growth copies anyway."""
        cut = int(self.mask.any(0).long().argmax()) if self.rows else 0
        if cut:
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, cut:], layer.values[:, :, cut:]
            self.mask = self.mask[:, cut:]

    def take(self, n: int, cache) -> Batch:
        """The first `n` rows as a batch of their own in `cache` (an empty one); this batch keeps the rest."""
        for mine, layer in zip(cache.layers, self.cache.layers):
            mine.lazy_initialization(layer.keys, layer.values)
            mine.keys, mine.values = layer.keys[:n], layer.values[:n]
            layer.keys, layer.values = layer.keys[n:], layer.values[n:]
        head = Batch(cache, self.mask[:n], self.positions[:n], self.last[:n], self.rows[:n])
        self.mask, self.positions, self.last = self.mask[n:], self.positions[n:], self.last[n:]
        self.rows = self.rows[n:]
        return head

    def join(self, other: Batch) -> None:
        """Append `other`'s rows; the shorter cache is padded on the left (masked)."""
        a, b = self.mask.shape[1], other.mask.shape[1]
        self.grow(b - a)
        other.grow(a - b)
        for mine, theirs in zip(self.cache.layers, other.cache.layers):
            mine.keys, mine.values = torch.cat([mine.keys, theirs.keys]), torch.cat([mine.values, theirs.values])
        self.mask = torch.cat([self.mask, other.mask])
        self.positions = torch.cat([self.positions, other.positions])
        self.last = torch.cat([self.last, other.last])
        self.rows += other.rows
