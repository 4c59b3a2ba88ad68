"""The prefix plan of an evaluation pass: which prefixes are encoded once, in what order, and for how long."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from promot.prompt.prefix_tree import prefix_tree


def _lcp(a, b) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


SYSTEM, EXEMPLAR = [1, 2, 3], [4, 5, 6, 7]
SEQS = [SYSTEM + EXEMPLAR + [8, 9], SYSTEM + EXEMPLAR + [10], SYSTEM + EXEMPLAR + [11, 12, 13],
        SYSTEM + [20, 21, 22], SYSTEM + [20, 21, 23], SYSTEM + [30]]


def test_a_chat_pass_shares_the_system_turn_and_each_exemplar_once():
    tree = prefix_tree(SEQS)
    assert tree.nodes == [tuple(SYSTEM), tuple(SYSTEM + [20, 21]), tuple(SYSTEM + EXEMPLAR)]
    assert tree.parent == [-1, 0, 0]
    assert tree.start == [2, 2, 2, 1, 1, 0]
    assert tree.users() == [6, 2, 3]
    prefilled = sum(len(n) - len(tree.nodes[p]) if p >= 0 else len(n) for n, p in zip(tree.nodes, tree.parent)) + sum(
        len(s) - len(tree.nodes[n]) for s, n in zip(SEQS, tree.start))
    assert prefilled == 18 < sum(map(len, SEQS)) == 43


def test_waves_put_each_node_after_its_parent_and_rows_longest_first():
    seqs = [[1, 2, 3, 4, 5], [1, 2, 3, 4, 6], [1, 2, 3, 7], [1, 2, 3, 7, 8], [9, 1], [9, 2, 2, 2]]
    tree = prefix_tree(seqs)
    assert tree.nodes == [(), (9,), (1, 2, 3), (1, 2, 3, 4)] and tree.parent == [-1, 0, 0, 2]
    assert tree.waves(1) == [[2], [1], [3]]  # the longer of the ready extensions first, a child after its parent
    assert tree.waves(8) == [[2, 1], [3]]
    assert tree.order(seqs) == [5, 3, 0, 1, 2, 4]


def test_no_requests_and_one_request():
    assert prefix_tree([]).nodes == [()]
    one = prefix_tree([[5, 6, 7]])
    assert one.nodes == [(5, 6)] and one.start == [0] and one.waves(4) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 3), min_size=1, max_size=8), min_size=1, max_size=12))
def test_every_request_starts_from_the_deepest_prefix_another_shares(seqs):
    tree = prefix_tree(seqs)
    for node, parent in zip(tree.nodes[1:], tree.parent[1:]):
        assert tree.nodes[parent] == node[: len(tree.nodes[parent])] and len(tree.nodes[parent]) < len(node)
    users = tree.users()
    assert users[0] == len(seqs) and all(u >= 2 for u in users[1:])  # a node only one request uses saves nothing
    for r, s in enumerate(seqs):
        node = tree.nodes[tree.start[r]]
        assert tuple(s[: len(node)]) == node and len(node) < len(s)  # a token of its own: its logits come from it
        # at least as deep as what it shares with any other request, short of either one's last token
        assert len(node) >= max([min(_lcp(s, o), len(s) - 1, len(o) - 1) for i, o in enumerate(seqs) if i != r],
                                default=0)
    done = {0}
    for wave in tree.waves(3):
        assert len(wave) <= 3 and all(tree.parent[n] in done for n in wave)
        done.update(wave)
    assert done == set(range(len(tree.nodes)))
