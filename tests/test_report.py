"""promot report from fixture run directories: the HTML parses, every plot is there, tables carry the numbers."""
from __future__ import annotations

import json
from html.parser import HTMLParser

from promot.report.render import render


def _fixture_run(root, name, method, icl_curve, leak_curve, target_curve, ci=False, fmt="{False, True}"):
    run = root / name
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({
        "method": method, "base_model": {"source": "base-x", "fingerprint": "f"},
        "stages": {"stage2": {"best_score": max(target_curve), "best_step": 0, "metric": "accuracy"}}}))
    metrics = [{"stage": "stage2", "step": s, "icl_score": v, "icl_leakage": l}
               for s, v, l in zip((0, 10, 20), icl_curve, leak_curve)]
    metrics += [{"stage": "stage2", "step": s, "eval_target_score": t} for s, t in zip((0, 10, 20), target_curve)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))

    def summ(a, b, leak):
        return {"tasks": {"capitals": {"metric": "exact_match,none", "score": a, "n": 10},
                          "arith": {"metric": "exact_match,none", "score": b, "n": 10}},
                "norm_avg": (a + b) / 2, "leakage": leak, "leakage_n": 20}

    variants = {"base": {"k=1": summ(60, 40, 0.0)}, "tuned": {"k=1": summ(10, 0, 0.95)}}
    if method == "promot":
        variants["tuned"] = {"k=1": summ(58, 42, 0.01)}
        variants["tuned+prompt"] = {"k=1": summ(5, 0, 0.9)}
    deltas = {n: {"k=1": {"capitals": v["k=1"]["tasks"]["capitals"]["score"] - 60,
                          "arith": v["k=1"]["tasks"]["arith"]["score"] - 40,
                          "norm_avg": v["k=1"]["norm_avg"] - 50}} for n, v in variants.items() if n != "base"}
    if ci:  # what `promot eval` records with confidence intervals: ±7 points around each delta, ±5% leakage
        for n, per_k in deltas.items():
            per_k["k=1"]["ci"] = {t: [d - 7, d + 7] for t, d in per_k["k=1"].items()}
            variants[n]["k=1"]["leakage_ci"] = [max(0.0, variants[n]["k=1"]["leakage"] - 0.05),
                                                min(1.0, variants[n]["k=1"]["leakage"] + 0.05)]
    (run / "eval.json").write_text(json.dumps({"base_model": "base-x", "format": fmt,
                                               "variants": variants, "deltas": deltas, "target_tasks": []}))
    flip = {"task": "capitals", "shots": "k=1", "doc_id": 3, "input": "Q: capital of France? A:", "target": "Paris",
            "base": "Paris", "tuned": "True"}
    (run / "flips.jsonl").write_text(json.dumps(flip) + "\n")
    return run


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.imgs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(dict(attrs))


def test_report_renders_tables_plots_and_flips(tmp_path):
    ft = _fixture_run(tmp_path, "ft", "finetune", (50, 10, 5), (0.0, 0.8, 0.95), (50, 90, 95))
    pm = _fixture_run(tmp_path, "pm", "promot", (50, 49, 50), (0.0, 0.01, 0.01), (80, 92, 94))
    page = render([ft, pm], tmp_path / "out")
    text = page.read_text()
    parser = _Tags()
    parser.feed(text)
    parser.close()
    assert parser.tags.count("table") == 3  # summary and per-task for the one shot count, the monitor
    alts = {img["alt"] for img in parser.imgs}
    assert {"change vs base per task, 1-shot", "format leakage, 1-shot",
            "ICL score and leakage over steps (set monitor.tasks when training)",
            "trade-off (needs monitor.every aligned with stage2.eval_every)"} <= alts
    assert all(img["src"].startswith("data:image/png;base64,") and len(img["src"]) > 1000 for img in parser.imgs)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| pm | promot | 94.0 | – | 50.0 (+0.0) | 1.0 | 2.5 (−47.5) | 90.0 |" in md  # leakage on 0-100
    assert "| ft | finetune | 95.0 | – | 5.0 (−45.0) | 95.0 | – | – |" in md
    assert "| capitals | 60.0 | 10.0 (−50.0) | 58.0 (−2.0) | 5.0 (−55.0) |" in md
    assert "[" not in md.split("### Per task")[0].split("| run |")[1]  # no intervals recorded, none shown
    assert "tuned `True`" in md and "Paris" in text


def test_report_leads_with_the_cost_and_names_each_run_once(tmp_path):
    ft = _fixture_run(tmp_path, "finetune", "finetune", (50, 10, 5), (0.0, 0.8, 0.95), (50, 90, 95), fmt=None)
    pm = _fixture_run(tmp_path, "pm", "promot", (50, 49, 50), (0.0, 0.01, 0.01), (80, 92, 94), fmt=None)
    text = render([ft, pm], tmp_path / "out").read_text()
    md = (tmp_path / "out" / "report.md").read_text().splitlines()
    assert md[0] == "# promot report — finetune, pm (promot)"
    assert md[2] == ("Fine-tuning `finetune` cost 45.0 points of ICL Norm.Avg (1-shot, no prompt) and leaks the "
                     "target format into 95% of other answers; `pm (promot)` kept it, leak 1%.")
    assert "<code>finetune</code> cost 45.0 points" in text
    assert "format None" not in text and "format None" not in "\n".join(md)  # no eval format: phrase omitted
    monitor = "\n".join(md[md.index("## Specialization during training"):])
    assert "| finetune | 10 | 90.0 | 10.0 | 80.0 |" in monitor and "| pm | 20 | 94.0 | 50.0 | 1.0 |" in monitor


def test_confidence_intervals_are_shown_where_recorded(tmp_path):
    ft = _fixture_run(tmp_path, "ft", "finetune", (50, 10, 5), (0.0, 0.8, 0.95), (50, 90, 95), ci=True)
    pm = _fixture_run(tmp_path, "pm", "promot", (50, 49, 50), (0.0, 0.01, 0.01), (80, 92, 94))  # no CIs
    text = render([ft, pm], tmp_path / "out").read_text()
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| ft | finetune | 95.0 | – | 5.0 (−45.0 [−52.0, −38.0]) | 95.0 [90.0, 100.0] | – | – |" in md
    assert "| pm | promot | 94.0 | – | 50.0 (+0.0) | 1.0 | 2.5 (−47.5) | 90.0 |" in md
    assert "| capitals | 60.0 | 10.0 (−50.0 [−57.0, −43.0]) | 58.0 (−2.0) | 5.0 (−55.0) |" in md
    assert "cost 45.0 points of ICL Norm.Avg (1-shot, no prompt; −45.0 [−52.0, −38.0])" in md
    assert "5.0 (−45.0 [−52.0, −38.0])" in text  # the HTML tables too


def test_one_colour_per_method_everywhere():
    from promot.report import plots
    from promot.report.tables import RunView
    from promot.rundir import BaseModelRef, RunRecord
    from promot.training.methods import METHODS

    assert set(METHODS) <= set(plots.METHOD_COLORS)
    assert len(set(plots.METHOD_COLORS.values())) == len(plots.METHOD_COLORS)
    runs = [RunView(n, None, RunRecord(m, BaseModelRef("base-x")), None)
            for n, m in (("a", "promot"), ("b", "finetune"), ("c", "promot"))]
    style = plots._styles(runs)
    assert style["a"][0] == style["c"][0] == plots.METHOD_COLORS["promot"] != style["b"][0]
    assert style["a"][1] != style["c"][1]  # same method, told apart by line style


def test_heatmap_takes_missing_cells_and_intervals():
    from promot.report import plots

    assert plots.delta_heatmap([], [], []) is None
    png = plots.delta_heatmap(["ft no prompt", "pm +prompt"], ["capitals", "Norm.Avg"], [[-50.0, None], [2.0, -1.0]],
                              [[[-57.0, -43.0], None], [None, None]])
    assert png and len(png) > 1000


def test_report_without_eval_still_renders(tmp_path):
    run = _fixture_run(tmp_path, "ft", "finetune", (50, 10, 5), (0.0, 0.8, 0.95), (50, 90, 95))
    (run / "eval.json").unlink()
    page = render([run], tmp_path / "out")
    assert "run `promot eval RUN…`" in page.read_text()


def test_report_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, promot.report.render; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
