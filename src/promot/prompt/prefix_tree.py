"""Which prefixes an evaluation pass's requests share, planned before any forward runs.

Through a chat template every request starts with the same system turn, and within a task many share more: the
exemplar turn's opening, or a whole exemplar that lm-eval's seeded sampler gave several of them. Encoding each shared
prefix once, up front, cuts the prefill of a 1-shot chat pass by about a third (docs/RESULTS.md, "What a prefix tree
could still save"); filled as it goes instead, the row that first computes a prefix pads its whole batch to it and the
saving is lost. Written by hand: transformers' `generate` and lm-eval's HFLM encode every request whole.

The nodes are each request's deepest prefix shared with another request (its neighbours in token order), never the
whole request: its last token stays its own, as the logits of the first new token come from it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def shared_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading ids `a` and `b` have in common."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


@dataclass(frozen=True)
class PrefixTree:
    nodes: list[tuple[int, ...]]
    """The shared prefixes, shortest first; nodes[0] is the root, the prefix every request shares (maybe empty)."""
    parent: list[int]
    """Each node's deepest ancestor among the nodes (the root's: -1)."""
    start: list[int]
    """Each request's node: it prefills only what follows it."""

    def waves(self, batch_size: int) -> list[list[int]]:
        """The nodes after the root in batches of at most `batch_size`, each node after its parent, longest extension
        first within what is ready (less padding in a batch)."""
        done, pending, out = {0}, list(range(1, len(self.nodes))), []
        while pending:
            ready = [n for n in pending if self.parent[n] in done]
            ready.sort(key=lambda n: -(len(self.nodes[n]) - len(self.nodes[self.parent[n]])))
            wave = ready[:batch_size]
            out.append(wave)
            done.update(wave)
            pending = [n for n in pending if n not in done]
        return out

    def order(self, seqs: Sequence[Sequence[int]]) -> list[int]:
        """Requests by the length of what each prefills itself, longest first (rows of a batch pad to its longest)."""
        return sorted(range(len(seqs)), key=lambda r: -(len(seqs[r]) - len(self.nodes[self.start[r]])))

    def users(self) -> list[int]:
        """How many requests start at each node or below it: a node's cache can go once that many have started."""
        count = [0] * len(self.nodes)
        for node in self.start:
            while node >= 0:
                count[node] += 1
                node = self.parent[node]
        return count


def prefix_tree(seqs: Sequence[Sequence[int]]) -> PrefixTree:
    """Plan the shared prefixes of `seqs` (non-empty sequences of ids)."""
    if not seqs:
        return PrefixTree([()], [-1], [])
    first = seqs[0]
    root = max(0, min([len(s) - 1 for s in seqs] + [shared_length(first, s) for s in seqs[1:]]))
    lex = sorted(range(len(seqs)), key=lambda r: list(seqs[r]))
    deepest = [root] * len(seqs)
    for i, r in enumerate(lex):
        near = [shared_length(seqs[r], seqs[lex[j]]) for j in (i - 1, i + 1) if 0 <= j < len(lex)]
        deepest[r] = max(root, min(max(near, default=root), len(seqs[r]) - 1))
    nodes = sorted({tuple(seqs[r][:d]) for r, d in enumerate(deepest)} | {tuple(first[:root])}, key=len)
    index = {node: i for i, node in enumerate(nodes)}
    lengths = sorted({len(node) for node in nodes}, reverse=True)
    parent = [-1] + [next((index[node[:k]] for k in lengths if k < len(node) and node[:k] in index), 0)
                     for node in nodes[1:]]
    raw = PrefixTree(nodes, parent, [index[tuple(seqs[r][:d])] for r, d in enumerate(deepest)])
    return _shared_only(raw)


def _shared_only(tree: PrefixTree) -> PrefixTree:
    """Drop the nodes only one request starts at or below (a neighbour's longer match, cut to leave that neighbour a
    token of its own): computing them apart saves nothing. Their requests start at the nearest kept ancestor."""
    users = tree.users()
    keep = [n for n in range(len(tree.nodes)) if n == 0 or users[n] > 1]
    new = {n: i for i, n in enumerate(keep)}

    def kept(n: int) -> int:
        while n not in new:
            n = tree.parent[n]
        return new[n]

    return PrefixTree([tree.nodes[n] for n in keep], [-1] + [kept(tree.parent[n]) for n in keep[1:]],
                      [kept(n) for n in tree.start])
