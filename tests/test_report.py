"""promot report from fixture run directories: the HTML parses, every plot is there, tables carry the numbers."""
from __future__ import annotations

import json
from html.parser import HTMLParser

from promot.report.render import render


def _fixture_run(root, name, method, icl_curve, leak_curve, target_curve):
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
    (run / "eval.json").write_text(json.dumps({"base_model": "base-x", "format": "{False, True}",
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
    assert parser.tags.count("table") == 2  # summary and per-task, for the one shot count
    alts = {img["alt"] for img in parser.imgs}
    assert {"per-task scores, 1-shot", "ICL score and leakage over steps (set monitor.tasks when training)",
            "trade-off (needs monitor.every aligned with stage2.eval_every)"} <= alts
    assert all(img["src"].startswith("data:image/png;base64,") and len(img["src"]) > 1000 for img in parser.imgs)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| pm | promot | 94.0 | – | 50.0 (+0.0) | 0.01 | 2.5 (-47.5) | 0.90 |" in md
    assert "| ft | finetune | 95.0 | – | 5.0 (-45.0) | 0.95 | – | – |" in md
    assert "| capitals | 60.0 | 10.0 (-50.0) | 58.0 (-2.0) | 5.0 (-55.0) |" in md
    assert "tuned `True`" in md and "Paris" in text


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
