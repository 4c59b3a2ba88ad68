"""Seed-aware `promot compare` (issue 22): the interval over seeds and items, the headline that says "ahead" only when
that interval does, the report over several seeds, and a compare that picks up where it was killed."""
from __future__ import annotations

import json

import pytest
import yaml
from conftest import run_config
from test_frontier import _const, _items, _run

import promot
from promot.compare import method_configs
from promot.errors import ConfigError
from promot.evaluate.metrics import paired_bootstrap
from promot.evaluate.runner import EvalSpec
from promot.report import plots
from promot.report.frontier import (console_frontier, frontier_headline, frontier_points, matched_table,
                                    method_contrast)
from promot.report.seeds import seed_bootstrap
from promot.report.tables import load_runs

SPEC = EvalSpec(tasks=["mini"], shots=[1])
BASE = {"a": [30.0] * 40, "b": [50.0] * 40}  # test_frontier's base ICL items


def _noisy(hits_a: int, hits_b: int) -> dict[str, list[float]]:
    return {"a": _items(hits_a), "b": _items(hits_b)}


def _seeds(root, method, icls, target=40, name=None):
    """One finished, evaluated run per seed at root/<name>/seed-<s>, ICL items per seed as given."""
    return [_run(root / (name or method), f"seed-{s}", method, _items(target), icl) for s, icl in enumerate(icls)]


def test_one_seed_is_exactly_the_item_interval_and_identical_seeds_reduce_to_it():
    one = _noisy(13, 27)
    level = paired_bootstrap({t: [0.0] * 40 for t in one}, one)["norm_avg"]
    delta = paired_bootstrap(BASE, one)["norm_avg"]
    assert seed_bootstrap([[one]], ["a", "b"]) == level  # same item draws from the same RNG stream
    assert seed_bootstrap([[one]], ["a", "b"], base=BASE) == delta
    for n in (2, 3, 5):
        same = seed_bootstrap([[one] * n], ["a", "b"], base=BASE)
        assert same == pytest.approx(delta, abs=1e-9)  # resampling identical seeds changes nothing
    assert seed_bootstrap([[one], [one]], ["a", "b"], [1.0, -1.0]) == [0.0, 0.0]  # paired: a method minus itself
    apart = seed_bootstrap([[one, _noisy(30, 34)]], ["a", "b"], base=BASE)
    assert apart[1] - apart[0] > 1.5 * (delta[1] - delta[0])  # seeds that disagree widen it
    assert seed_bootstrap([[one, {"a": _items(3)}]], ["a", "b"]) is None  # a seed without items for a task


def test_a_method_whose_seeds_disagree_is_never_called_ahead(tmp_path):
    """The RESULTS case: ProMoT kept ICL in one seed of three, fine-tuning collapsed in all; on a single seed the
    old headline says "ahead beyond CI", over seeds the new one does not."""
    pm = _seeds(tmp_path, "promot", [_noisy(12, 12), _noisy(0, 0), _noisy(0, 1)])
    ft = _seeds(tmp_path, "finetune", [_noisy(0, 0), _noisy(0, 1), _noisy(0, 0)])
    runs = load_runs([*pm, *ft])
    assert [r.name for r in runs[:2]] == ["promot/seed-0", "promot/seed-1"] and runs[0].group == "promot"
    front = frontier_points(runs)
    assert front.seeded and [m.name for m in front.methods] == ["promot", "finetune"]
    text = frontier_headline(runs)
    assert "`promot` keeps the most: mean ICL Norm.Avg 10.4 [" in text and "over 3 seeds" in text
    assert "not ahead beyond CI" in text and "ahead beyond CI (" not in text
    diff, ci = method_contrast(front.methods[0], front.methods[1])
    assert diff == pytest.approx(10.0, abs=1e-9) and ci[0] <= 0 < ci[1]
    single = frontier_headline(load_runs([pm[0], ft[0]]))  # seed 0 alone: ahead on its items
    assert single.endswith("ahead beyond CI (difference +30.0 [+20.0, +40.0]).")
    # with 3 seeds, one seed behind the other method keeps it from being "ahead", however good the other two
    for worst in (0, 2, 4):
        m = _seeds(tmp_path / f"w{worst}", "promot", [_noisy(30, 30), _noisy(28, 29), _noisy(worst, worst)])
        f = _seeds(tmp_path / f"w{worst}", "finetune", [_noisy(5, 5)] * 3)
        assert "not ahead beyond CI" in frontier_headline(load_runs([*m, *f]))


def test_seeds_that_agree_are_ahead_with_the_difference_and_its_interval(tmp_path):
    pm = _seeds(tmp_path, "promot", [_noisy(20, 22), _noisy(21, 20), _noisy(22, 21)])
    ft = _seeds(tmp_path, "finetune", [_noisy(2, 1), _noisy(0, 1), _noisy(1, 2)])
    runs = load_runs([*ft, *pm])
    text = frontier_headline(runs)
    assert text.startswith("Of the 2 methods that reach the best mean target score (100.0 [100.0, 100.0]")
    assert "`promot` keeps the most" in text and "— ahead beyond CI (difference +49.6 [+" in text
    rows = matched_table(runs)
    assert rows[0] == ["method", "seeds", "target score [95% CI]", "ICL Norm.Avg, no prompt [95% CI]", "ICL per seed",
                       "Δ vs base [95% CI]", "− finetune [95% CI]", "leakage %, no prompt", "guard leakage % per seed",
                       "within CI of best target"]
    assert rows[1][:2] == ["base", "–"] and rows[1][3] == "40.0 [40.0, 40.0]"
    pm_row, ft_row = rows[2], rows[3]
    assert pm_row[:2] == ["promot", "3"] and pm_row[4] == "52.5 / 51.2 / 53.8" and pm_row[-1] == "yes"
    assert pm_row[5].startswith("+12.5 [") and pm_row[6].startswith("+49.6 [+")  # rounding: 52.5 − 2.9
    assert ft_row[6] == "–"
    lines = console_frontier(runs)
    assert lines[0] == text.replace("`", "") and lines[1].startswith("method") and "ICL per seed" in lines[1]


def test_a_method_that_reaches_the_target_in_one_seed_of_three_is_not_matched(tmp_path):
    """The bench's case (RESULTS, issue 22): ProMoT learned the target in one seed of three and kept ICL; with three
    seeds its mean target's interval still reaches 100 (resampling may draw that seed three times), so only the
    per-seed rule keeps it from being called "ahead" of the fine-tuning that learned the task every time."""
    pm = [_run(tmp_path / "promot", f"seed-{s}", "promot", _items(hits), icl)
          for s, (hits, icl) in enumerate([(22, _noisy(11, 11)), (40, _noisy(8, 7)), (22, _noisy(9, 8))])]
    ft = _seeds(tmp_path, "finetune", [_noisy(0, 0), _noisy(7, 7), _noisy(0, 0)])
    runs = load_runs([*pm, *ft])
    front = frontier_points(runs)
    promot_ = next(m for m in front.methods if m.name == "promot")
    assert promot_.final.target_ci[1] == pytest.approx(100.0)  # the mean's interval alone would count it
    text = frontier_headline(runs)
    assert text.startswith("Only `finetune` reaches the best mean target score (100.0 [100.0, 100.0])")
    assert "ahead" not in text
    assert text.endswith("; `promot` keeps more (22.5 [12.9, 32.1]) but its mean target score 70.0 [45.0, 100.0] "
                         "falls short (its seeds reach 100.0 in 1 of 3).")
    rows = {r[0]: r for r in matched_table(runs)}
    assert rows["promot"][-1] == "no (1 of 3 seeds)" and rows["finetune"][-1] == "yes"
    # all three seeds at the target: matched again, and ahead
    ok = _seeds(tmp_path / "ok", "promot", [_noisy(11, 11), _noisy(8, 7), _noisy(9, 8)])
    assert "`promot` keeps the most" in frontier_headline(load_runs([*ok, *ft]))


def test_mixed_groups_report_and_plot(tmp_path):
    """A compare over seeds reported with a variant run outside it: every seed's point, one mean per method."""
    from promot.report.render import render

    pm = _seeds(tmp_path, "promot", [_const(50.0), _const(40.0)])
    one = _run(tmp_path / "promot-1shot", "seed-0", "promot", _items(40), _const(30.0))
    lone = _run(tmp_path, "lora", "lora", _items(40), _const(10.0))
    runs = load_runs([*pm, one, lone])
    front = frontier_points(runs)
    assert [(m.name, len(m.runs)) for m in front.methods] == [("promot", 2), ("promot-1shot", 1), ("lora", 1)]
    assert front.methods[0].final.icl == 45.0 and front.methods[0].final.icl_ci == [40.0, 50.0]
    assert front.methods[1].label == "promot-1shot (promot)"
    assert front.methods[2].final == front.runs[3].final  # a single run keeps its own point and item intervals
    assert plots.frontier(runs)
    html = render([*pm, one, lone], tmp_path / "out").read_text()
    assert "hierarchical bootstrap over seeds and items" in html
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| promot | 2 | 100.0 [100.0, 100.0] | 45.0 [40.0, 50.0] | 50.0 / 40.0 |" in md
    assert 'hierarchical bootstrap over seeds and items' in md and '"Ahead" needs' in md


def test_a_single_run_is_a_method_with_one_seed(tmp_path):
    """The frontier has one path: plain runs and one seed per method in the seed layout get the same numbers, the
    same verdict and the same table, only the names differ."""
    flat = load_runs([_run(tmp_path / "flat", "promot", "promot", _items(40), _noisy(20, 22)),
                      _run(tmp_path / "flat", "finetune", "finetune", _items(40), _noisy(0, 1))])
    seeded = load_runs([*_seeds(tmp_path / "s", "promot", [_noisy(20, 22)]),
                        *_seeds(tmp_path / "s", "finetune", [_noisy(0, 1)])])
    assert frontier_headline(flat) == frontier_headline(seeded) and "ahead beyond CI (difference +" in \
        frontier_headline(flat)
    rows = matched_table(flat)
    assert rows == matched_table(seeded) and [r[0] for r in rows[2:]] == ["promot", "finetune"] and "− finetune" in \
        rows[0][5]


def test_runs_with_the_same_folder_name_outside_the_seed_layout_are_not_pooled(tmp_path):
    a = _run(tmp_path / "x", "finetune", "finetune", _items(40), _const(20.0))
    b = _run(tmp_path / "y", "finetune", "finetune", _items(40), _const(30.0))
    front = frontier_points(load_runs([a, b]))
    assert not front.seeded and len(front.methods) == 2
    assert frontier_headline(load_runs([a, b])).endswith("ahead beyond CI (difference +10.0 [+10.0, +10.0]).")


# ---------------------------------------------------------------------------------------------------------------
# compare: the seed layout, and a killed compare that picks up where it stopped


@pytest.fixture
def no_eval(monkeypatch):
    """compare without lm-eval: task check, evaluation and report stubbed (what they do is tested elsewhere)."""
    monkeypatch.setattr("promot.evaluate.runner.check_tasks", lambda spec: None)
    monkeypatch.setattr("promot.evaluate.runner.evaluate", lambda runs, spec: [])
    monkeypatch.setattr("promot.report.render.render", lambda runs, out: out / "report.html")


def _cfg(tiny_dirs, task_files, tmp_path):
    stage = {"steps": 1, "lr": 1e-3, "batch_size": 4, "eval_every": 0, "eval_on_start": False}
    return run_config(tiny_dirs["llama"], task_files, tmp_path / "unused", stage1=stage, stage2=stage)


def test_compare_runs_every_method_per_seed_and_reuses_finished_runs(tiny_dirs, task_files, tmp_path, no_eval,
                                                                      monkeypatch):
    cfg, out = _cfg(tiny_dirs, task_files, tmp_path), tmp_path / "cmp"
    runs, _ = promot.compare(cfg, ["finetune"], SPEC, out, seeds=[0, 1])  # real (1-step) trainings
    assert runs == [out / "finetune" / "seed-0", out / "finetune" / "seed-1"]
    assert [yaml.safe_load((r / "config.yaml").read_text())["seed"] for r in runs] == [0, 1]
    assert all(json.loads((r / "run.json").read_text())["method"] == "finetune" for r in runs)

    # killed: seed 1 unfinished (no run.json), seed 2 never started; seed 0's finished run is reused as it is
    (runs[1] / "run.json").unlink()
    trained, resumed = [], []
    monkeypatch.setattr("promot.api.train", lambda c: trained.append(c.output_dir) or _fake(c.output_dir))
    monkeypatch.setattr("promot.api.resume", lambda r: resumed.append(r) or _fake(r))
    again, _ = promot.compare(cfg, ["finetune"], SPEC, out, seeds=[0, 1, 2])
    assert again == [*runs, out / "finetune" / "seed-2"]
    assert trained == [str(out / "finetune" / "seed-2")] and resumed == [runs[1]]

    # another config into the same folders: refused before anything is trained
    trained.clear()
    with pytest.raises(ConfigError, match="holds a run with another config"):
        promot.compare(cfg, ["finetune"], SPEC, out, ["stage2.lr=0.5"], seeds=[0, 1])
    assert trained == []
    # overwrite=true retrains every run
    promot.compare(cfg, ["finetune"], SPEC, out, ["overwrite=true"], seeds=[0, 1])
    assert trained == [str(runs[0]), str(runs[1])]


def _fake(run):
    from pathlib import Path

    Path(run).mkdir(parents=True, exist_ok=True)
    Path(run, "run.json").write_text("{}")
    return Path(run)


def test_one_seed_keeps_the_layout_and_seeds_are_checked(tmp_path, monkeypatch, tiny_dirs, task_files, no_eval):
    cfg, out = _cfg(tiny_dirs, task_files, tmp_path), tmp_path / "cmp"
    trained = []
    monkeypatch.setattr("promot.api.train", lambda c: trained.append((c.output_dir, c.seed)) or _fake(c.output_dir))
    promot.compare(cfg, ["finetune", "promot"], SPEC, out)
    promot.compare(cfg, ["finetune"], SPEC, tmp_path / "s7", seeds=[7])
    assert trained == [(str(out / "finetune"), 0), (str(out / "promot"), 0), (str(tmp_path / "s7" / "finetune"), 7)]
    (out / "finetune" / "config.yaml").write_text("method: finetune\n")  # a one-seed run where seeds would go
    with pytest.raises(ConfigError, match="holds a one-seed run"):
        promot.compare(cfg, ["finetune"], SPEC, out, seeds=[0, 1])
    for bad in ([], [1, 1], [-1]):
        with pytest.raises(ConfigError, match="--seeds"):
            method_configs(cfg, ["finetune"], out, seeds=bad)


def test_cli_seeds_option(tmp_path, capsys):
    from promot.cli import main

    assert main(["compare", "cfg.yaml", "--methods", "finetune", "--seeds", "0,x"]) == 2  # argparse's error, one line
    assert "--seeds: comma-separated integers" in capsys.readouterr().err


def test_an_lr_sweep_runs_each_method_once_per_lr_at_its_own_key(tmp_path, monkeypatch, tiny_dirs, task_files,
                                                                  no_eval):
    """--lr-sweep: one run per (method, lr, seed) at OUT/<method>-lr<lr>[/seed-<s>], trained at that lr as the
    method's own (lora.lr for LoRA, stage2.lr for full fine-tuning); prompt-tuning (no stage 2) once."""
    from promot.methods import stage2_lr

    cfg, out = _cfg(tiny_dirs, task_files, tmp_path), tmp_path / "cmp"
    cfgs = method_configs(cfg, ["finetune", "lora", "prompt-tuning"], out, seeds=[0, 1], lrs=[1e-4, 3e-3])
    got = [(c.output_dir, c.seed, stage2_lr(c)) for c in cfgs]
    assert got == [
        (str(out / "finetune-lr0.0001" / "seed-0"), 0, (1e-4, "stage2.lr")),
        (str(out / "finetune-lr0.0001" / "seed-1"), 1, (1e-4, "stage2.lr")),
        (str(out / "finetune-lr0.003" / "seed-0"), 0, (3e-3, "stage2.lr")),
        (str(out / "finetune-lr0.003" / "seed-1"), 1, (3e-3, "stage2.lr")),
        (str(out / "lora-lr0.0001" / "seed-0"), 0, (1e-4, "lora.lr")),
        (str(out / "lora-lr0.0001" / "seed-1"), 1, (1e-4, "lora.lr")),
        (str(out / "lora-lr0.003" / "seed-0"), 0, (3e-3, "lora.lr")),
        (str(out / "lora-lr0.003" / "seed-1"), 1, (3e-3, "lora.lr")),
        (str(out / "prompt-tuning" / "seed-0"), 0, (1e-3, "stage2.lr")),
        (str(out / "prompt-tuning" / "seed-1"), 1, (1e-3, "stage2.lr")),
    ]
    trained = []
    monkeypatch.setattr("promot.api.train", lambda c: trained.append(c.output_dir) or _fake(c.output_dir))
    runs, _ = promot.compare(cfg, ["finetune"], SPEC, tmp_path / "one", lrs=[1e-4, 3e-3])
    assert runs == [tmp_path / "one" / "finetune-lr0.0001", tmp_path / "one" / "finetune-lr0.003"]


@pytest.mark.parametrize("sweep, words", [("", "name at least one learning rate"),
                                          ("0", "must be positive finite numbers, got 0"),
                                          ("1e-3,-1", "must be positive finite numbers, got -1"),
                                          ("inf", "must be positive finite numbers, got inf"),
                                          ("fast", "comma-separated learning rates, got 'fast'"),
                                          ("1e-3,0.001", "name each learning rate once")])
def test_cli_lr_sweep_bad_input_one_line_exit_2_nothing_written(sweep, words, tmp_path, capsys):
    from promot.cli import main

    out = tmp_path / "cmp"
    assert main(["compare", "cfg.yaml", "--methods", "finetune", "--out", str(out), "--lr-sweep", sweep]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--lr-sweep" in err[0] and words in err[0], err
    assert not out.exists()


def test_each_lr_of_a_sweep_is_its_own_point_and_the_headline_names_method_and_lr(tmp_path):
    """A swept method's lrs are separate frontier points (`finetune-lr0.001 (finetune)`); the headline picks the
    (method, lr) that keeps the most ICL among those reaching the best target."""
    low = _seeds(tmp_path, "finetune", [_const(60.0), _const(62.0)], name="finetune-lr0.0001")
    high = _seeds(tmp_path, "finetune", [_const(20.0), _const(22.0)], name="finetune-lr0.001")
    runs = load_runs([*low, *high])
    front = frontier_points(runs)
    assert [m.label for m in front.methods] == ["finetune-lr0.0001 (finetune)", "finetune-lr0.001 (finetune)"]
    headline = frontier_headline(runs)
    assert "`finetune-lr0.0001 (finetune)` keeps the most" in headline and "ahead beyond CI" in headline, headline


def test_each_method_at_its_own_lr_follows_the_headline_rule(tmp_path):
    """Per method, among its lrs whose target reaches the best, the one keeping most ICL; a method whose every lr
    misses the target says so; no sweep, no table. Hand-built runs, seeds 0-1."""
    from promot.report.lr_sweep import lr_table

    runs = load_runs([
        *_seeds(tmp_path, "finetune", [_const(20.0), _const(22.0)], name="finetune-lr0.001"),
        *_seeds(tmp_path, "finetune", [_const(60.0), _const(62.0)], name="finetune-lr0.0001"),
        *_seeds(tmp_path, "finetune", [_const(80.0), _const(80.0)], target=10, name="finetune-lr1e-05"),  # misses
        *_seeds(tmp_path, "lora", [_const(70.0), _const(70.0)], target=10, name="lora-lr0.001"),
        *_seeds(tmp_path, "lora", [_const(75.0), _const(75.0)], target=12, name="lora-lr0.01"),
        *_seeds(tmp_path, "promot", [_const(50.0), _const(50.0)]),  # not swept: not in the table
    ])
    rows = lr_table(frontier_points(runs))
    assert [r[:3] for r in rows[1:]] == [["finetune", "1e-05, 0.0001, 0.001", "0.0001"],
                                         ["lora", "0.001, 0.01", "–"]]
    assert rows[1][4].startswith("61.0") and "2 lrs reaching" in rows[1][5]
    assert rows[2][5] == "every lr misses the best target score"
    assert lr_table(frontier_points(load_runs(_seeds(tmp_path / "plain", "promot", [_const(1.0)])))) == []
    from promot.report.render import render

    render([r.path for r in runs], tmp_path / "report")
    md = (tmp_path / "report" / "report.md").read_text()
    assert "### Each method at its own learning rate" in md and "| lora | 0.001, 0.01 | – |" in md
