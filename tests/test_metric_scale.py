"""Every lm-eval metric lands on 0-100 from what the task declares or what its values show, and what cannot
(lower-is-better TER/perplexity, an unknown unbounded scale) stays out of Norm. Avg. with a warning. The result
blocks are built here in lm-eval's shape (no dataset is downloaded)."""
from __future__ import annotations

import logging

import pytest

from promot.evaluate.metrics import item_scores, task_score
from promot.evaluate.runner import EvalSpec, _deltas, summarize

IFEVAL = {  # lm-eval's ifeval block: four 0-1 metrics, samples carry booleans (and lists for the inst-level ones)
    "results": {"ifeval": {"alias": "ifeval", "prompt_level_strict_acc,none": 0.25,
                           "prompt_level_strict_acc_stderr,none": 0.1, "inst_level_strict_acc,none": 0.4,
                           "inst_level_strict_acc_stderr,none": "N/A", "prompt_level_loose_acc,none": 0.3,
                           "inst_level_loose_acc,none": 0.45}},
    "higher_is_better": {"ifeval": {"prompt_level_strict_acc": True, "inst_level_strict_acc": True,
                                    "prompt_level_loose_acc": True, "inst_level_loose_acc": True}},
    "samples": {"ifeval": [{"doc_id": i, "prompt_level_strict_acc": i == 0, "inst_level_strict_acc": [i == 0, True],
                            "resps": [["x"]]} for i in range(4)]},
}
HUMANEVAL = {  # a pass@k task: per-item 0/1 hits, the aggregate a fraction
    "results": {"humaneval": {"alias": "humaneval", "pass@1,create_test": 0.5, "pass@1_stderr,create_test": 0.2}},
    "higher_is_better": {"humaneval": {"pass@1": True}},
    "samples": {"humaneval": [{"doc_id": i, "pass@1": float(i % 2), "resps": [["def f(): pass"]]} for i in range(4)]},
}
WMT = {  # bleu/chrf/ter: corpus-level (samples hold (ref, hyp) pairs), 0-100 by definition; TER lower-is-better
    "results": {"wmt_bleu": {"bleu,none": 12.5, "chrf,none": 40.0, "ter,none": 80.0},
                "wmt_ter": {"ter,none": 75.0, "ter_stderr,none": 2.0},
                "wmt_chrf": {"chrf,none": 0.8}},  # chrF 0.8 is 0.8 on 0-100, not 80
    "higher_is_better": {"wmt_bleu": {"bleu": True, "chrf": True, "ter": False}, "wmt_ter": {"ter": False},
                         "wmt_chrf": {"chrf": True}},
    "samples": {t: [{"doc_id": 0, "bleu": ("ref", "hyp"), "ter": ("ref", "hyp"), "resps": [["x"]]}]
                for t in ("wmt_bleu", "wmt_ter", "wmt_chrf")},
}
PPL = {  # a loglikelihood_rolling task: perplexity, lower is better, unbounded
    "results": {"wikitext": {"word_perplexity,none": 35.2, "byte_perplexity,none": 1.9, "bits_per_byte,none": 0.93}},
    "higher_is_better": {"wikitext": {"word_perplexity": False, "byte_perplexity": False, "bits_per_byte": False}},
    "samples": {"wikitext": [{"doc_id": 0, "word_perplexity": (1.0, 2), "resps": [[1.0]]}]},
}


def test_ifeval_and_pass_at_k_land_on_0_to_100_from_their_values():
    s = task_score(IFEVAL["results"]["ifeval"], IFEVAL["higher_is_better"]["ifeval"], IFEVAL["samples"]["ifeval"])
    assert (s.metric, s.score, s.averaged) == ("prompt_level_strict_acc,none", 25.0, True)
    assert item_scores(IFEVAL["samples"]["ifeval"], s.metric) == [100.0, 0.0, 0.0, 0.0]  # booleans are 0/1 hits
    h = task_score(HUMANEVAL["results"]["humaneval"], HUMANEVAL["higher_is_better"]["humaneval"],
                   HUMANEVAL["samples"]["humaneval"])
    assert (h.metric, h.score, h.averaged) == ("pass@1,create_test", 50.0, True)


def test_bleu_chrf_are_0_to_100_already_and_ter_perplexity_stay_out_of_norm_avg():
    hib = WMT["higher_is_better"]
    assert task_score(WMT["results"]["wmt_bleu"], hib["wmt_bleu"]) == task_score(WMT["results"]["wmt_bleu"])
    assert task_score(WMT["results"]["wmt_bleu"], hib["wmt_bleu"]).score == 12.5  # bleu, higher-is-better first
    assert task_score(WMT["results"]["wmt_chrf"], hib["wmt_chrf"]).score == 0.8
    ter = task_score(WMT["results"]["wmt_ter"], hib["wmt_ter"])
    assert (ter.score, ter.averaged) == (75.0, False) and "lower-is-better" in ter.note
    ppl = task_score(PPL["results"]["wikitext"], PPL["higher_is_better"]["wikitext"])
    assert not ppl.averaged and "lower-is-better" in ppl.note
    # Undeclared: the known lower-is-better names still count as such; an unknown unbounded value is not guessed.
    assert not task_score({"ter,none": 75.0}).averaged
    odd = task_score({"my_score,none": 37.0}, None, [{"my_score": 37.0}, {"my_score": 12.0}])
    assert not odd.averaged and "no known 0-100 scale" in odd.note


def test_norm_avg_averages_one_scale_and_warns_about_what_it_leaves_out(caplog):
    mixed = {k: {**IFEVAL[k], **HUMANEVAL[k], **WMT[k], **PPL[k]} for k in ("results", "higher_is_better", "samples")}
    mixed["configs"] = {}
    spec = EvalSpec(tasks=list(mixed["results"]), shots=[0])
    with caplog.at_level(logging.WARNING):
        s = summarize(mixed, spec, None)
    # ifeval 25, humaneval 50, wmt_bleu 12.5, wmt_chrf 0.8: all on 0-100; wmt_ter and wikitext left out.
    assert s.norm_avg == pytest.approx((25.0 + 50.0 + 12.5 + 0.8) / 4)
    assert s.unaveraged_tasks == ("wikitext", "wmt_ter") and "wmt_ter" not in s.icl_tasks
    assert "wmt_ter" in caplog.text and "wikitext" in caplog.text
    tuned = summarize({**mixed, "results": {**mixed["results"], "wmt_ter": {"ter,none": 10.0}}}, spec, None)
    d = _deltas({"base": {"k=0": s}, "tuned": {"k=0": tuned}}, iters=50)["tuned"]["k=0"]
    assert d.values["norm_avg"] == 0.0 and d.values["wmt_ter"] == -65.0  # a TER change is reported, never averaged
    assert "wmt_ter" not in d.ci and "wikitext" not in d.ci
