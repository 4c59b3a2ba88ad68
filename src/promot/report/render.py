"""`promot report RUN…`: one self-contained HTML page (plots embedded) and a Markdown twin, from run directories."""
from __future__ import annotations

import html
import time
from pathlib import Path

from promot import __version__
from promot.io import atomic_write_text
from promot.report import plots
from promot.report.frontier import frontier_headline, frontier_points, matched_table
from promot.report.lr_sweep import lr_table
from promot.report.tables import (RunView, alignment_table, delta_grid, flagged, guard_table, headline,
                                  leakage_entries, load_runs, markdown, monitor_table, shot_keys, summary_table,
                                  task_table, title_of)

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.4em;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .6em;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}
.flip{background:#fafafa;border-left:3px solid #c33;padding:.4em .8em;margin:.5em 0;font-size:.85em}
code,pre{font-size:.95em}pre{white-space:pre-wrap}.note{color:#666;font-size:.9em}.lead{font-size:1.1em}
.warn{background:#fff3f3;border-left:4px solid #c33;padding:.4em .8em;margin:.8em 0}"""


SEEDS_NOTE = ("<p class=note>Several seeds per method: large points are each method's mean over its seeds, faint ones "
              "each seed's model; every interval in the table is a 95% hierarchical bootstrap over seeds and items "
              "(each draw resamples the seeds, then the test items they all answered, paired with the base), so it "
              "says whether another seed would likely agree. \"Ahead\" needs the interval of the difference to "
              "exclude 0; with three seeds that roughly means every seed is ahead.</p>")


def _html_table(rows: list[list[str]]) -> str:
    if not rows:
        return "<p class=note>no data</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(b64: str | None, alt: str) -> str:
    return f'<img alt="{alt}" src="data:image/png;base64,{b64}">' if b64 else f"<p class=note>{alt}: no data</p>"


def _flips(runs: list[RunView], per_run: int = 6) -> tuple[str, str]:
    h, m = [], []
    for r in runs:
        for f in r.flips[:per_run]:
            h.append(f"<div class=flip><b>{html.escape(r.name)}</b> · {html.escape(f['task'])} · {f['shots']}<pre>"
                     f"{html.escape(f['input'][-300:])}</pre>target <code>{html.escape(str(f['target']))}</code> · "
                     f"base <code>{html.escape(f['base'].strip()[:80])}</code> · tuned "
                     f"<code>{html.escape(f['tuned'].strip()[:80])}</code></div>")
            m.append(f"- **{r.name}** {f['task']} ({f['shots']}): target `{f['target']}`, base "
                     f"`{f['base'].strip()[:80]}`, tuned `{f['tuned'].strip()[:80]}`")
    return "".join(h) or "<p class=note>no flips recorded (run `promot eval` first)</p>", "\n".join(m)


def _inline_md(text: str) -> str:
    """The headline's `code` spans as HTML."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


GUARD_NOTE = ("The share of generic requests (no labels needed) that the bare model, prompt off, answers in the "
              "target's format: at the start of stage 2, at the kept checkpoint and at the best target checkpoint. "
              "Selection keeps the least leaking checkpoint within the best target score's 95% interval; a kept "
              "checkpoint over the starting model's share by more than the ceiling is NOT PROTECTED.")


def render(run_paths: list[str | Path], out_dir: str | Path = "report", with_base: bool = True) -> Path:
    """Write report.html and report.md into out_dir; return the HTML path."""
    runs = load_runs(run_paths)
    out = Path(out_dir)
    ks = shot_keys(runs)
    base = next((r.eval.base_model for r in runs if r.eval), runs[0].info.base_model.source if runs else "")
    fmt = next((r.eval.format for r in runs if r.eval and r.eval.format), None)
    title = f"promot report — {title_of(runs)}"
    facts = [f"base model <code>{html.escape(str(base))}</code>",
             *([f"fine-tuned format {html.escape(str(fmt))}"] if fmt else []), f"promot {__version__}",
             time.strftime("%Y-%m-%d %H:%M")]
    lead = headline(runs) if with_base else None
    figs = {"curve": plots.icl_over_steps(runs), "tradeoff": plots.target_vs_icl(runs),
            "frontier": plots.frontier(runs)}
    front = frontier_points(runs)
    which, matched = frontier_headline(runs, front), matched_table(runs, front)
    h = [f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title><style>{CSS}</style>"
         f"</head><body><h1>{html.escape(title)}</h1>", f"<p class=lead>{_inline_md(lead)}</p>" if lead else "",
         f"<p class=note>{' · '.join(facts)}</p><p class=note>no prompt = the tuned model alone (ProMoT's way for "
         "other tasks); prompt on = with the run's soft prompt. Leakage = % of answers on other tasks that fall in "
         "the fine-tuned format. Brackets: 95% paired-bootstrap interval of the change, where recorded.</p>"]
    m = [f"# {title}", "", *([lead, ""] if lead else []),
         " · ".join([f"base model `{base}`", *([f"fine-tuned format {fmt}"] if fmt else []), f"promot {__version__}"]),
         ""]
    warnings = [f"`{r.name}`: {r.info.guard.describe()}" for r in runs if flagged(r)]
    if warnings:  # first thing on the page: a run whose protection did not hold
        h.append("<div class=warn><b>The protection did not hold</b> (leakage guard):<ul>"
                 + "".join(f"<li>{_inline_md(w)}</li>" for w in warnings) + "</ul></div>")
        m += ["**The protection did not hold** (leakage guard):", "", *(f"- {w}" for w in warnings), ""]
    if figs["frontier"] or matched:
        h += ["<h2>Which method keeps most ICL at the target score</h2>",
              f"<p class=lead>{_inline_md(which)}</p>" if which else "",
              _img(figs["frontier"], "forgetting frontier: target score vs ICL Norm.Avg"),
              "<p class=note>Lines: stage-2 checkpoints (validation target score, monitor's ICL score); dashed: the "
              "WiSE-FT α grid; points: the evaluated model, error bars its absolute 95% bootstrap intervals. A run is "
              "within CI of the best when its target interval reaches the best run's target score.</p>"
              if figs["frontier"] else "", SEEDS_NOTE if front.seeded else "", _html_table(matched) if matched else ""]
        m += ["## Which method keeps most ICL at the target score", "", *([which, ""] if which else []),
              *([markdown(matched)] if matched else []),
              *([html.unescape(SEEDS_NOTE[len("<p class=note>"):-len("</p>")]), ""] if front.seeded else [])]
    if lrs := lr_table(front):  # an lr sweep: each method at its own lr
        h += ["<h3>Each method at its own learning rate</h3>", _html_table(lrs)]
        m += ["### Each method at its own learning rate", "", markdown(lrs)]
    for k in ks:
        summary, tasks = summary_table(runs, k, with_base), task_table(runs, k, with_base)
        h += [f"<h2>Summary, {k[2:]}-shot</h2>", _html_table(summary), f"<h3>Per task, {k[2:]}-shot</h3>",
              _html_table(tasks)]
        if with_base:
            h.append(_img(plots.delta_heatmap(*delta_grid(runs, k)), f"change vs base per task, {k[2:]}-shot"))
        h.append(_img(plots.leakage_bars(leakage_entries(runs, k)), f"format leakage, {k[2:]}-shot"))
        m += [f"## Summary, {k[2:]}-shot", "", markdown(summary), f"### Per task, {k[2:]}-shot", "", markdown(tasks)]
    if not ks:
        h.append("<p class=note>no eval.json in these runs: run `promot eval RUN…` for ICL scores.</p>")
    if guards := guard_table(runs):
        h += ["<h2>Leakage guard</h2>", f"<p class=note>{GUARD_NOTE}</p>", _html_table(guards)]
        m += ["## Leakage guard", "", GUARD_NOTE, "", markdown(guards)]
    monitor = monitor_table(runs)
    h += ["<h2>Specialization during training</h2>", _img(figs["curve"], "ICL score and leakage over steps "
          "(set monitor.tasks when training)"), _html_table(monitor) if monitor else "",
          "<h2>Target score vs ICL over checkpoints</h2>",
          _img(figs["tradeoff"], "trade-off (needs monitor.every aligned with stage2.eval_every)")]
    m += ["## Specialization during training", "", markdown(monitor) if monitor else
          "_no monitor data (set monitor.tasks when training)_\n"]
    if align := alignment_table(runs):
        h += ["<h2>Gradient alignment (format share of the update)</h2>", _html_table(align),
              _img(plots.alignment_over_steps(runs), "gradient alignment over steps")]
        m += ["## Gradient alignment", "", markdown(align)]
    flips_html, flips_md = _flips(runs)
    h += ["<h2>Examples that flipped (right under base, wrong after tuning)</h2>", flips_html, "</body></html>"]
    m += ["## Examples that flipped", "", flips_md or "_none recorded_", ""]
    atomic_write_text(out / "report.html", "".join(h))
    atomic_write_text(out / "report.md", "\n".join(m))
    return out / "report.html"
