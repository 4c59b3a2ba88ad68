"""Work shared between the runs of one compare lives only inside `sharing()`: nothing outlives the compare, and
outside one every run does its own work (the monitor's use of it: test_evaluate.py)."""
from __future__ import annotations

from promot.shared_work import shared, sharing


def test_a_cache_exists_only_inside_its_scope_and_a_nested_scope_joins_the_outer_one():
    assert shared("x") is None
    with sharing():
        shared("x")["k"] = 1
        with sharing():
            assert shared("x") == {"k": 1}
        assert shared("x") == {"k": 1}
    assert shared("x") is None
    with sharing():
        assert shared("x") == {}  # a new compare starts empty

