"""The ICL world: tasks, tokenizer, shipped model, suite export, pretraining and the demo."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

from promot.cli import main
from promot.evaluate.suites import suite_dir
from promot.rundir import read_run_info
from promot.world.export import export_suite
from promot.world.pretrain import EpisodeDataset, PretrainConfig, pretrain
from promot.world.tasks import ICL_TASKS, TARGET_TASKS, episode, render
from promot.world.tokenizer import build_tokenizer


def test_tasks_are_seeded_and_have_many_formats():
    assert len(ICL_TASKS) >= 12
    assert len({t.answer_format for t in ICL_TASKS.values()}) >= 6
    for task in [*ICL_TASKS.values(), *TARGET_TASKS.values()]:
        a = episode(random.Random(7), task, 4)
        assert a == episode(random.Random(7), task, 4)
        assert all(x and y for x, y in a)


def test_episode_defined_tasks_change_mapping_between_episodes():
    task = ICL_TASKS["map_letters"]
    rng = random.Random(0)
    maps = {tuple(sorted(task.new_state(rng)["map"].items())) for _ in range(20)}
    assert len(maps) > 15  # a fresh mapping per episode: only the demonstrations say what it is


def test_targets_never_appear_in_pretraining():
    tok = build_tokenizer()
    data = EpisodeDataset(tok, 500, seed=0, max_shots=7)
    assert not {t.name for t in data.tasks} & set(TARGET_TASKS)
    markers = set(tok.convert_tokens_to_ids([">>", "[", "]"]))  # the generation target's own format
    for i in range(len(data)):
        assert not markers & set(data[i]["input_ids"])


def test_tokenizer_round_trips_and_saves(tmp_path):
    from transformers import AutoTokenizer

    tok = build_tokenizer()
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = render(TARGET_TASKS["brackets"], ("a c f", "[ d f i ]"))
    ids = loaded(text)["input_ids"]
    assert ids[0] == loaded.bos_token_id and loaded.unk_token_id not in ids
    assert loaded.decode(ids, skip_special_tokens=True) == text


def test_shipped_model_loads_as_a_plain_hf_model():
    from promot.models import load_model

    loaded = load_model("world-tiny")
    assert type(loaded.model).__name__ == "LlamaForCausalLM"
    assert sum(p.numel() for p in loaded.model.parameters()) < 2_000_000
    info = json.loads((suite_dir("world").parents[2] / "world" / "assets" / "world-tiny" / "world.json").read_text())
    assert info["icl_accuracy"]["4"]["mean"] > info["icl_accuracy"]["0"]["mean"] + 0.2


def test_exported_suite_matches_the_shipped_one(tmp_path):
    files = export_suite(tmp_path)
    shipped = suite_dir("world")
    for f in files:
        assert f.read_bytes() == (shipped / f.relative_to(tmp_path)).read_bytes(), f.name
    test = [json.loads(line) for line in (shipped / "data" / "true_false.test.jsonl").read_text().splitlines()]
    train = [json.loads(line) for line in (shipped / "data" / "true_false.train.jsonl").read_text().splitlines()]
    assert not {r["question"] for r in test} & {r["question"] for r in train}
    assert 0.35 < sum(r["answer"] == "true" for r in test) / len(test) < 0.65


def test_pretraining_never_replaces_a_folder_that_is_no_world_model(tmp_path, capsys):
    """`world pretrain --out` replaces an earlier world model only; anything else is refused before training."""
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["world", "pretrain", "--out", str(tmp_path), "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not a world model (world.json missing)" in err, err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_short_pretraining_learns_in_context(tmp_path):
    info = pretrain(tmp_path / "m", PretrainConfig(steps=60, eval_items=16), eval_shots=(0, 4))
    losses = info["train_loss"]
    assert losses[-1] < losses[0] - 0.5
    assert info["icl_accuracy"]["4"]["mean"] > info["icl_accuracy"]["0"]["mean"]
    assert (tmp_path / "m" / "model.safetensors").is_file() and (tmp_path / "m" / "tokenizer.json").is_file()


def test_demo_quick_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path), "--methods", "finetune,promot"]) == 0
    got = capsys.readouterr()
    out = got.out
    screen = (got.out + got.err).splitlines()
    assert not any("it/s" in line for line in screen), screen  # no Trainer or lm-eval progress bars
    assert len(screen) <= 20, screen  # the tables (progress is one log line per stage and eval variant)
    assert "base" in out and "promot" in out and "finetune" in out
    assert (tmp_path / "report" / "report.html").is_file()
    ev = json.loads((tmp_path / "promot" / "eval.json").read_text())
    assert ev["variants"]["tuned+prompt"]["k=1"]["leakage"] is not None
    assert "world_true_false" in ev["variants"]["tuned+prompt"]["k=1"]["tasks"]
    metrics = [json.loads(line) for line in (tmp_path / "finetune" / "metrics.jsonl").read_text().splitlines()]
    assert {m["step"] for m in metrics if "icl_leakage" in m} == {0, 20}  # the monitor's curve
    assert {m["step"] for m in metrics if "align_mlp" in m} == {0, 20}  # gradient alignment


def test_demo_with_seeds_sums_each_method_up_over_its_seeds(tmp_path, capsys):
    """`promot demo --seeds`: every method once per seed; the report's title and lead sentence name each method once
    (its mean change and the seeds' range), not every run."""
    assert main(["demo", "--quick", "--seeds", "0,1", "--out", str(tmp_path), "--methods", "finetune,promot"]) == 0
    assert sorted(p.name for p in (tmp_path / "promot").iterdir() if p.is_dir()) == ["seed-0", "seed-1"]
    md = (tmp_path / "report" / "report.md").read_text().splitlines()
    assert md[0] == "# promot report — finetune ×2 seeds, promot ×2 seeds"
    lead = md[2]
    assert lead.startswith("Fine-tuning `finetune` over 2 seeds on average ") and "`promot` over 2 seeds" in lead
    assert "seed-" not in lead and "seeds " in lead  # one clause per method with its seeds' range
    assert "over seeds" in capsys.readouterr().out  # the frontier's table is per method over seeds


def test_demo_rejects_unknown_method(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path / "d"), "--methods", "finetune,fintune"]) == 2
    assert "unknown fintune" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()  # refused before the first method trained


@pytest.mark.slow
def test_demo_shows_the_effect(tmp_path):
    """Seeds 0-2 at the demo's settings: fine-tuning collapses and is flagged in every seed; ProMoT keeps most of
    the base's ICL with no leakage, and its guard holds (RESULTS, "The demo's settings over seeds and kernels")."""
    from statistics import mean

    from promot.world.demo import DemoSettings, run_demo

    runs, _ = run_demo(DemoSettings(out=tmp_path, methods=("finetune", "promot"), seeds=(0, 1, 2)))
    ev = {(r.parent.name, r.name): json.loads((r / "eval.json").read_text())["variants"] for r in runs}
    assert sorted(ev) == [(m, f"seed-{s}") for m in ("finetune", "promot") for s in range(3)]
    for k in ("k=1", "k=4"):
        base = ev["promot", "seed-0"]["base"][k]["norm_avg"]
        ft = [ev["finetune", f"seed-{s}"]["tuned"][k] for s in range(3)]
        pm = [ev["promot", f"seed-{s}"]["tuned"][k] for s in range(3)]
        # measured at 1 / 4 shots on AVX2, both kernels: fine-tuning 0.09 x base, leakage 0.81-0.86 per seed;
        # ProMoT 0.95 / 0.93-0.94 x base, leakage <= 0.004
        assert all(x["leakage"] >= 0.75 for x in ft) and mean(x["norm_avg"] for x in ft) < 0.2 * base
        assert all(x["leakage"] <= 0.01 for x in pm)
        assert mean(x["norm_avg"] for x in pm) >= 0.9 * base
    for r in runs:
        guard = read_run_info(r).guard
        assert guard.held == (r.parent.name == "promot")  # the guard flags fine-tuning in every seed, not ProMoT


def test_eval_suite_world_scores_the_shipped_model(tmp_path, capsys):
    assert main(["eval", "--base", "world-tiny", "--suite", "world", "--shots", "0,4", "--limit", "12",
                 "--out", str(tmp_path)]) == 0
    ev = json.loads((tmp_path / "eval.json").read_text())["variants"]["base"]
    assert ev["k=4"]["norm_avg"] > ev["k=0"]["norm_avg"] + 20  # it learns in context
    assert "world_true_false" in ev["k=4"]["target_tasks"]


def _world_config(tmp_path, **over) -> Path:
    from promot.world.demo import demo_config

    cfg = demo_config(quick=True)
    cfg.update(over)
    path = tmp_path / "world.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_compare_trains_every_method_and_reports_the_frontier_with_the_alpha_curve(tmp_path, capsys):
    cfg = _world_config(tmp_path)
    out = tmp_path / "cmp"
    assert main(["compare", str(cfg), "--methods", "finetune,wise-ft", "--suite", "world", "--shots", "1",
                 "--limit", "4", "--out", str(out), "stage2.steps=10", "monitor.every=10"]) == 0
    printed = capsys.readouterr().out
    assert "keeps the most" in printed  # the frontier's headline
    assert (out / "report" / "report.html").is_file() and "Which method keeps most ICL" in (out / "report" / "report.md").read_text()
    rows = [json.loads(line) for line in (out / "wise-ft" / "metrics.jsonl").read_text().splitlines()]
    alphas = [r for r in rows if r["stage"] == "wise-ft"]
    assert [r["alpha"] for r in alphas] == [0.0, 0.5, 1.0]
    assert all("icl_score" in r and "eval_target_score" in r for r in alphas)  # the monitor probes every α
    ft = json.loads((out / "finetune" / "run.json").read_text())
    wf = json.loads((out / "wise-ft" / "run.json").read_text())
    assert ft["stages"]["stage2"] == wf["stages"]["stage2"]  # same data, same budget: same stage 2
    assert alphas[-1]["eval_target_score"] == ft["stages"]["stage2"]["best_score"]  # α=1 is finetune's model


@pytest.mark.parametrize("args, message", [
    (["--methods", "finetune,replay", "--suite", "world"], "replay.train is required"),
    (["--methods", "finetune", "--tasks", "world,wrold_copy"], "unknown lm-eval task 'wrold_copy'"),
])
def test_compare_refuses_what_it_cannot_run_before_training_any(args, message, tmp_path, capsys):
    cfg = _world_config(tmp_path, replay={"fraction": 0.2})
    out = tmp_path / "cmp"
    assert main(["compare", str(cfg), *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()
