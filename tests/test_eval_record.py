"""eval.json as a typed record: the serving rule and the ICL-task filter written once, older files read with
defaults, unreadable files refused in one line."""
from __future__ import annotations

import json

import pytest

from promot.errors import CheckpointError
from promot.eval_record import EvalRecord, VariantSummary, read_eval
from promot.report.points import final_point


def _summary(tasks: dict[str, float], **kw) -> dict:
    return {"tasks": {t: {"metric": "acc", "score": v, "n": 4} for t, v in tasks.items()},
            "norm_avg": 0.0, **kw}


def test_the_icl_tasks_leave_out_the_target_its_other_formats_and_unaveraged_tasks():
    s = VariantSummary.from_json(_summary({"a": 50.0, "b": 25.0, "bleu": 10.0, "t": 90.0, "t2": 80.0},
                                          target_tasks=["t"], other_format_tasks=["t2"], unaveraged_tasks=["bleu"],
                                          items={"a": [100.0, 0.0], "b": [50.0, 0.0], "t": [100.0, 80.0]}))
    assert s.icl_tasks == ["a", "b"] and set(s.icl_items) == {"a", "b"}
    assert s.target_score == 90.0
    # the frontier's ICL interval is over the same tasks as Norm. Avg.: a corpus-level task does not erase it
    assert final_point(s, s).icl_ci is not None


def test_serving_is_the_prompted_variant_where_there_is_one():
    plain = _summary({"t": 40.0}, target_tasks=["t"])
    prompted = _summary({"t": 95.0}, target_tasks=["t"])
    both = EvalRecord.from_json({"base_model": "x", "variants": {"tuned": {"k=1": plain}, "tuned+prompt":
                                                                 {"k=1": prompted}}})
    only = EvalRecord.from_json({"base_model": "x", "variants": {"tuned": {"k=1": plain}}})
    assert both.serving("k=1").target_score == 95.0 and only.serving("k=1").target_score == 40.0
    assert only.serving("k=4") is None


def test_an_older_file_reads_with_defaults_and_deltas_keep_their_intervals(tmp_path):
    (tmp_path / "eval.json").write_text(json.dumps({
        "base_model": "b", "variants": {"tuned": {"k=1": _summary({"a": 1.0})}},
        "deltas": {"tuned": {"k=1": {"a": -2.0, "norm_avg": -2.0, "ci": {"norm_avg": [-3.0, -1.0]}}}}}))
    ev = read_eval(tmp_path)
    assert ev.delta("tuned", "k=1") == -2.0 and ev.delta_ci("tuned", "k=1") == (-3.0, -1.0)
    assert ev.delta("tuned+prompt", "k=1") is None and ev.own_target is None and ev.shots == ()
    assert ev.variants["tuned"]["k=1"].leakage is None and ev.shot_keys == ["k=1"]
    assert read_eval(tmp_path / "missing") is None


@pytest.mark.parametrize("text", ["{not json", '{"variants": {"tuned": {"k=1": {"tasks": {"a": {"x": 1}}}}}}'])
def test_an_unreadable_eval_json_is_refused_in_one_line(tmp_path, text):
    (tmp_path / "eval.json").write_text(text)
    with pytest.raises(CheckpointError) as e:
        read_eval(tmp_path)
    assert "eval.json" in str(e.value) and "\n" not in str(e.value)
