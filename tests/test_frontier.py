"""The forgetting frontier (issue 15, item 3): target score vs ICL Norm.Avg per run, the "which method" headline and
the matched-target-score table, from fake run directories with known numbers."""
from __future__ import annotations

import json

from promot.report import plots
from promot.report.frontier import (console_frontier, frontier_headline, frontier_points, matched_table,
                                    within_best)
from promot.report.tables import load_runs


def _summary(target: list[float] | None, icl: dict[str, list[float]], leak: float | None = None,
             leak_ci: list[float] | None = None) -> dict:
    """One eval.json variant summary: the target task `tgt` (when given) and ICL tasks, with per-item scores."""
    items = {**icl, **({"tgt": target} if target is not None else {})}
    tasks = {t: {"metric": "exact_match,none", "score": sum(v) / len(v), "n": len(v)} for t, v in items.items()}
    s = {"tasks": tasks, "norm_avg": sum(tasks[t]["score"] for t in icl) / len(icl),
         "target_tasks": ["tgt"] if target is not None else [], "other_format_tasks": [], "items": items,
         "leakage": leak, "leakage_n": 40}
    if leak_ci is not None:
        s["leakage_ci"] = leak_ci
    return s


def _items(hits: int, n: int = 40) -> list[float]:
    return [100.0] * hits + [0.0] * (n - hits)


def _run(root, name, method, target, icl, *, prompt_target=None, leak=None, leak_ci=None, metrics=(), stages=None,
         with_eval=True):
    """A finished run: run.json, metrics.jsonl, and (with_eval) eval.json with base and tuned (+ tuned+prompt when
    prompt_target is given: it serves the target, the tuned model alone serves ICL)."""
    run = root / name
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"method": method, "base_model": {"source": "base-x"},
                                              "stages": stages or {"stage2": {"best_score": 90.0, "best_step": 10}}}))
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    if with_eval:
        variants = {"base": {"k=1": _summary(_items(0), {"a": [30.0] * 40, "b": [50.0] * 40}, 0.0, [0.0, 0.0])},
                    "tuned": {"k=1": _summary(target, icl, leak, leak_ci)}}
        if prompt_target is not None:
            variants["tuned+prompt"] = {"k=1": _summary(prompt_target, {"a": [0.0] * 40}, 0.9)}
        (run / "eval.json").write_text(json.dumps({"base_model": "base-x", "variants": variants, "deltas": {}}))
    return run


def _const(x: float) -> dict[str, list[float]]:
    """ICL items with a known mean and a degenerate interval [x, x]."""
    return {"a": [x] * 40, "b": [x] * 40}


def _four(tmp_path):
    """ft reaches 100 (the best); pm 97.5 and wise 95.0 reach it within their CIs; lora keeps the most ICL (70) but
    its target (50.0) is far outside."""
    return load_runs([
        _run(tmp_path, "ft", "finetune", _items(40), _const(20.0)),
        _run(tmp_path, "pm", "promot", _items(0), _const(50.0), prompt_target=_items(39), leak=0.1,
             leak_ci=[0.05, 0.15]),
        _run(tmp_path, "lora", "lora", _items(20), _const(70.0)),
        _run(tmp_path, "wise", "wise-ft", _items(38), _const(45.0)),
    ])


def test_final_points_come_from_the_serving_variant_with_item_cis(tmp_path):
    runs = _four(tmp_path)
    front = frontier_points(runs)
    assert front.k == "k=1"
    by = {f.name: f.final for f in front.runs}
    assert by["ft"].target == 100.0 and by["ft"].target_ci == [100.0, 100.0]
    # promot: the target from tuned+prompt (97.5), ICL and leakage from the tuned model alone (no prompt)
    assert by["pm"].target == 97.5 and by["pm"].icl == 50.0 and by["pm"].icl_ci == [50.0, 50.0]
    assert by["pm"].target_ci[1] == 100.0 and by["pm"].target_ci[0] < 97.5
    assert by["pm"].leakage == 0.1 and by["pm"].leakage_ci == [0.05, 0.15]
    lo, hi = by["lora"].target_ci
    assert by["lora"].target == 50.0 and 30.0 < lo < 50.0 < hi < 70.0
    assert front.base.target == 0.0 and front.base.icl == 40.0 and front.base.icl_ci == [40.0, 40.0]
    assert frontier_points(runs).runs[2].final == by["lora"]  # seeded: the same intervals every time
    assert within_best(front) == {"ft": True, "pm": True, "lora": False, "wise": True}


def test_icl_interval_is_the_bootstrap_of_the_mean_of_task_means(tmp_path):
    runs = load_runs([_run(tmp_path, "ft", "finetune", _items(40), {"a": _items(20), "b": [60.0] * 40})])
    p = frontier_points(runs).runs[0].final
    assert p.icl == 55.0  # (50 + 60) / 2
    lo, hi = p.icl_ci
    assert 55.0 - 10.0 < lo < 55.0 < hi < 55.0 + 10.0  # only task a varies: half its ±~15 spread
    # a task without per-item scores (corpus-level metric): no interval rather than one over fewer tasks
    ev = json.loads((tmp_path / "ft" / "eval.json").read_text())
    del ev["variants"]["tuned"]["k=1"]["items"]["b"]
    (tmp_path / "ft" / "eval.json").write_text(json.dumps(ev))
    assert frontier_points(load_runs([tmp_path / "ft"])).runs[0].final.icl_ci is None


def test_headline_picks_the_best_icl_within_the_target_ci_and_names_the_excluded(tmp_path):
    runs = _four(tmp_path)
    lora = frontier_points(runs).runs[2].final
    text = frontier_headline(runs)
    assert text == (
        "Of the 3 runs whose target score's 95% CI reaches the best (100.0 [100.0, 100.0], `ft (finetune)`), "
        "`pm (promot)` keeps the most: ICL Norm.Avg 50.0 [50.0, 50.0] (1-shot, no prompt), vs 45.0 [45.0, 45.0] for "
        "`wise (wise-ft)` — ahead beyond CI (difference +5.0 [+5.0, +5.0]); `lora` keeps more (70.0 [70.0, 70.0]) "
        "but its target score "
        f"50.0 [{lora.target_ci[0]:.1f}, {lora.target_ci[1]:.1f}] falls short.")
    rows = matched_table(runs)  # every run is a method with one seed: the seeds table's questions, one seed each
    assert rows[0][:2] == ["method", "seeds"] and "ICL per seed" not in rows[0] and rows[0][-2] == "guard leakage %"
    assert rows[1] == ["base", "–", "0.0 [0.0, 0.0]", "40.0 [40.0, 40.0]", "–", "0.0 [0.0, 0.0]", "–", "–"]
    assert [r[0] for r in rows[2:]] == ["lora", "pm (promot)", "wise (wise-ft)", "ft (finetune)"]  # by ICL Norm.Avg
    pm = frontier_points(runs).runs[1].final
    assert rows[3] == ["pm (promot)", "1", f"97.5 [{pm.target_ci[0]:.1f}, 100.0]", "50.0 [50.0, 50.0]",
                       "+10.0 [+10.0, +10.0]", "10.0 [5.0, 15.0]", "–", "yes"]
    assert rows[2][-1] == "no" and rows[5][-1] == "yes"
    lines = console_frontier(runs)
    assert lines[0] == text.replace("`", "") and lines[1].startswith("method") and set(lines[2]) == {"-"}
    assert lines[4].split()[:2] == ["lora", "1"] and lines[4].split()[-1] == "no"


def test_headline_overlap_and_tie(tmp_path):
    runs = load_runs([
        _run(tmp_path, "pm", "promot", _items(40), {"a": _items(20)}),  # 50.0, CI about ±15
        _run(tmp_path, "ft", "finetune", _items(40), {"a": _items(18)}),  # 45.0, CI about ±15
    ])
    text = frontier_headline(runs)
    assert "`pm (promot)` keeps the most: ICL Norm.Avg 50.0 [" in text
    # the runs answer the same items: the paired difference's interval, not two overlapping intervals, decides
    assert text.endswith("for `ft (finetune)` — not ahead beyond CI: the difference +5.0 [+0.0, +12.5] includes 0.")
    tied = load_runs([
        _run(tmp_path / "t", "x", "replay", _items(40), _const(30.0)),
        _run(tmp_path / "t", "y", "l2-sp", _items(40), _const(30.0)),
    ])
    assert frontier_headline(tied).endswith("vs 30.0 [30.0, 30.0] for `y (l2-sp)` — tied.")


def test_single_run_within_and_no_eval(tmp_path):
    runs = load_runs([_run(tmp_path, "ft", "finetune", _items(40), _const(20.0)),
                      _run(tmp_path, "lora", "lora", _items(0), _const(70.0))])
    assert frontier_headline(runs) == (
        "Only `ft (finetune)` reaches the best target score (100.0 [100.0, 100.0]) within its 95% CI; it keeps ICL "
        "Norm.Avg 20.0 [20.0, 20.0] (1-shot, no prompt); `lora` keeps more (70.0 [70.0, 70.0]) but its target "
        "score 0.0 [0.0, 0.0] falls short.")
    alone = load_runs([tmp_path / "ft"])
    assert frontier_headline(alone) == ("`ft (finetune)` reaches a target score of 100.0 [100.0, 100.0] and keeps "
                                        "ICL Norm.Avg 20.0 [20.0, 20.0] (1-shot, no prompt); no other evaluated run "
                                        "to compare.")
    bare = load_runs([_run(tmp_path / "b", "ft", "finetune", None, _const(1.0), with_eval=False)])
    assert frontier_headline(bare) is None and matched_table(bare) == [] and console_frontier(bare) == []
    assert plots.frontier(bare) is None


WISE_STAGES = {"stage2": {"best_score": 90.0, "best_step": 20},
               "wise-ft": {"best_alpha": 0.5, "best_score": 97.0, "metric": "accuracy",
                           "scores": [{"alpha": a, "target_score": t}
                                      for a, t in ((0.0, 50.0), (0.5, 97.0), (1.0, 98.0))]}}
WISE_METRICS = [
    {"stage": "stage2", "step": 0, "eval_target_score": 50.0}, {"stage": "stage2", "step": 0, "icl_score": 40.0},
    {"stage": "stage2", "step": 10, "eval_target_score": 95.0}, {"stage": "stage2", "step": 10, "icl_score": 10.0},
    {"stage": "stage2", "step": 20, "eval_target_score": 98.0},  # no monitor at this step: not on the curve
    {"stage": "wise-ft", "alpha": 1.0, "eval_target_score": 98.0, "icl_score": 5.0, "icl_leakage": 0.9},
    {"stage": "wise-ft", "alpha": 0.0, "eval_target_score": 50.0, "icl_score": 40.0, "icl_leakage": 0.0},
    {"stage": "wise-ft", "alpha": 0.5, "eval_target_score": 97.0, "icl_score": 33.0, "icl_leakage": 0.1},
]


def test_checkpoint_and_alpha_curves_and_best_target_prefers_wise_ft(tmp_path):
    run = _run(tmp_path, "w", "wise-ft", _items(39), _const(33.0), metrics=WISE_METRICS, stages=WISE_STAGES)
    runs = load_runs([run])
    assert runs[0].best_target() == 97.0  # the interpolated model was kept, not stage 2's best checkpoint
    f = frontier_points(runs).runs[0]
    assert f.checkpoints == [(0, 50.0, 40.0), (10, 95.0, 10.0)]
    assert f.alphas == [(0.0, 50.0, 40.0), (0.5, 97.0, 33.0), (1.0, 98.0, 5.0)]  # sorted by α
    assert f.best_alpha == 0.5
    plain = load_runs([_run(tmp_path, "p", "finetune", _items(39), _const(33.0), metrics=WISE_METRICS[:4])])
    assert plain[0].best_target() == 90.0 and frontier_points(plain).runs[0].alphas == []


def test_frontier_plot_with_and_without_alpha_and_monitor(tmp_path):
    wise = _run(tmp_path, "w", "wise-ft", _items(39), _const(33.0), metrics=WISE_METRICS, stages=WISE_STAGES)
    ft = _run(tmp_path, "ft", "finetune", _items(40), _const(20.0), metrics=WISE_METRICS[:4])
    bare = _run(tmp_path, "pm", "promot-replay", _items(38), _const(45.0))  # eval only: no monitor, no α
    for paths in ([wise, ft, bare], [ft], [bare]):
        png = plots.frontier(load_runs(paths))
        assert png and len(png) > 1000
    curves_only = _run(tmp_path, "c", "l2-sp", None, _const(1.0), metrics=WISE_METRICS, with_eval=False)
    assert plots.frontier(load_runs([curves_only])) and frontier_headline(load_runs([curves_only])) is None
    for m in ("wise-ft", "promot-wise-ft", "replay", "promot-replay", "l2-sp"):
        assert m in plots.METHOD_COLORS


def test_report_leads_with_the_frontier(tmp_path):
    from promot.report.render import render

    runs = [tmp_path / n for n in ("ft", "pm", "lora", "wise")]
    _four(tmp_path)
    text = render(runs, tmp_path / "out").read_text()
    md = (tmp_path / "out" / "report.md").read_text()
    top = md.split("## Summary")[0]
    assert "## Which method keeps most ICL at the target score" in top
    assert frontier_headline(load_runs(runs)) in top
    assert "| pm (promot) | 1 | 97.5 [" in top and "| 50.0 [50.0, 50.0] | +10.0 [+10.0, +10.0] | 10.0 [5.0, 15.0] | – | yes |" \
        in top
    assert text.index('alt="forgetting frontier') < text.index("<h2>Summary")
    assert "<code>pm (promot)</code> keeps the most" in text
