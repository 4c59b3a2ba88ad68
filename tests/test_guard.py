"""The leakage guard: its requests, its reading of a real model, and what selection does with it."""
from __future__ import annotations

import itertools
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import make_model, make_tokenizer, run_config

from promot.data import Example
from promot.errors import DataError
from promot.evaluate.guard import LeakageGuard, load_requests
from promot.evaluate.metrics import AnswerFormat, first_word
from promot.rundir import read_run_info
from promot.training.selection import GuardPolicy, KeepBest, best_note, wilson_lower
from promot.world.guard_set import GUARD_SET, guard_requests


class _Weights(torch.nn.Module):
    """What KeepBest snapshots: the trainable tensors of a wrapper with no prompt."""

    prompt = None

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(2))


def _select(readings, ceiling=5.0, tolerance=10.0, items=32) -> tuple[KeepBest, _Weights]:
    """Feed (step, target score, guard leakage) readings; the weights at each step hold the step's number."""
    lm = _Weights()
    keep = KeepBest(lm, GuardPolicy(ceiling, items, tolerance))
    for step, score, leak in readings:
        lm.w.data.fill_(step)
        keep.record(step, score, leak)
    lm.w.data.fill_(-1)
    keep.restore()
    return keep, lm


def _batch_rule(readings, tolerance):
    """The rule stated over all readings at once: within `tolerance` of the best score, least leakage, then the
    higher score, then the earlier step."""
    best = max(score for _, score, _ in readings)
    near = [r for r in readings if r[1] >= best - tolerance - 1e-9]
    return min(near, key=lambda r: (r[2], -r[1], r[0]))[0]


def test_a_better_target_that_leaks_more_is_never_kept_within_tolerance():
    keep, lm = _select([(0, 60.0, 0.01), (10, 95.0, 0.02), (20, 100.0, 0.30), (30, 40.0, 0.0)])
    assert keep.kept_step == 10 and keep.kept_score == 95.0 and lm.w[0].item() == 10
    outcome = keep.outcome()
    assert outcome.held and outcome.leakage == 0.02 and outcome.base == 0.01
    assert outcome.best_step == 20 and outcome.best_leakage == 0.30 and outcome.tolerance == 10.0
    assert "kept accuracy 95.00 at step 10 over the best, 100.00 at step 20" in best_note(keep, "accuracy")


def test_a_checkpoint_outside_the_tolerance_does_not_compete():
    keep, lm = _select([(0, 60.0, 0.0), (10, 80.0, 0.0), (20, 100.0, 0.02)])
    assert keep.kept_step == 20 and lm.w[0].item() == 20 and keep.outcome().held


def test_the_default_tolerance_is_the_best_scores_own_interval():
    """Wilson's 95% interval of 100% over 32 items reaches down to 89.3; over 320 items to 98.8."""
    assert wilson_lower(1.0, 32) == pytest.approx(0.8928, abs=1e-4)
    readings = [(0, 50.0, 0.0), (10, 90.0, 0.01), (20, 100.0, 0.2)]
    assert _select(readings, tolerance=None, items=32)[0].kept_step == 10
    assert _select(readings, tolerance=None, items=320)[0].kept_step == 20


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10).map(lambda x: 10.0 * x), st.integers(0, 5).map(lambda x: x / 5)),
                min_size=1, max_size=12),
       st.sampled_from([0.0, 10.0, 25.0]))
def test_streaming_selection_keeps_what_the_rule_over_all_checkpoints_keeps(readings, tolerance):
    """The stream holds only the undominated candidates, yet keeps exactly what the rule stated over every
    checkpoint at once keeps, weights included."""
    steps = [(10 * i, score, leak) for i, (score, leak) in enumerate(readings)]
    keep, lm = _select(steps, tolerance=tolerance)
    assert keep.kept_step == _batch_rule(steps, tolerance) and lm.w[0].item() == keep.kept_step
    assert len(keep.candidates) <= len({leak for _, _, leak in steps})


def test_without_a_guard_the_best_score_is_kept_and_the_earlier_on_ties():
    lm = _Weights()
    keep = KeepBest(lm)
    for step, score in [(0, 50.0), (10, 90.0), (20, 90.0), (30, 70.0)]:
        lm.w.data.fill_(step)
        keep.record(step, score, 0.9 if step == 10 else 0.0)  # a reading without a policy changes nothing
    keep.restore()
    assert keep.kept_step == 10 and lm.w[0].item() == 10 and keep.outcome() is None and len(keep.candidates) == 1


def _prompt_only(readings, prompt_only=True) -> tuple[KeepBest, _Weights]:
    lm = _Weights()
    keep = KeepBest(lm, prompt_only=prompt_only)
    for step, score in readings:
        lm.w.data.fill_(step)
        keep.record(step, score)
    lm.w.data.fill_(-1)
    keep.restore()
    return keep, lm


def test_a_prompt_only_stage_whose_scores_never_move_keeps_its_latest_prompt():
    """Exact match stuck at 0 says nothing about the prompt: stage 1 must not hand back its untrained start."""
    keep, lm = _prompt_only([(0, 0.0), (50, 0.0), (100, 0.0)])
    assert keep.kept_step == 100 and lm.w[0].item() == 100 and len(keep.candidates) == 1
    assert "the latest prompt kept" in best_note(keep, "exact_match")
    keep, lm = _prompt_only([(0, 0.0), (50, 0.0), (100, 0.0)], prompt_only=False)  # the model trains: step 0 stays
    assert keep.kept_step == 0 and lm.w[0].item() == 0 and "latest" not in best_note(keep, "exact_match")


def test_once_a_prompt_only_stage_scores_differently_the_usual_rule_holds():
    keep, lm = _prompt_only([(0, 0.0), (50, 0.0), (100, 20.0), (150, 20.0), (200, 5.0)])
    assert keep.kept_step == 100 and lm.w[0].item() == 100 and not keep.flat  # the earlier on ties again
    keep, lm = _prompt_only([(0, 10.0), (50, 10.0), (100, 0.0)])  # a drop after a flat start: the flat run's latest
    assert keep.kept_step == 50 and lm.w[0].item() == 50
    keep, _ = _prompt_only([(0, 0.0)])  # one checkpoint: nothing to be flat about
    assert keep.kept_step == 0 and not keep.flat


def test_a_kept_checkpoint_over_the_ceiling_is_flagged_with_the_figures():
    keep, _ = _select([(0, 60.0, 0.0), (10, 95.0, 0.20), (20, 100.0, 0.40)])
    outcome = keep.outcome()
    assert keep.kept_step == 10 and not outcome.held
    text = outcome.describe()
    assert text.startswith("NOT PROTECTED") and "20.0% at step 10" in text and "base 0.0%" in text
    assert "ceiling +5 points" in text and "best target step 20: 40.0%" in text


def test_the_ceiling_is_the_users():
    keep, _ = _select([(0, 60.0, 0.0), (10, 100.0, 0.08)], ceiling=10.0)
    assert keep.kept_step == 10 and keep.outcome().held
    keep, _ = _select([(0, 60.0, 0.0), (10, 100.0, 0.08)], ceiling=5.0)
    assert not keep.outcome().held


def test_selection_state_survives_a_checkpoint(tmp_path):
    """A resumed stage keeps what an uninterrupted one would: every candidate's weights come back."""
    readings = [(0, 50.0, 0.0), (10, 100.0, 0.3), (20, 96.0, 0.2), (30, 98.0, 0.25)]
    lm = _Weights()
    keep = KeepBest(lm, GuardPolicy(5.0, 32, 10.0))
    for step, score, leak in readings[:3]:
        lm.w.data.fill_(step)
        keep.record(step, score, leak)
    keep.save(tmp_path, 20)
    again = KeepBest(_Weights(), GuardPolicy(5.0, 32, 10.0))
    again.load(tmp_path, json.loads(json.dumps(keep.state(20))))
    again.lm.w.data.fill_(20)  # the checkpoint's own weights, loaded before training begins
    again.on_train_begin(None, None, None)
    for k in (keep, again):
        k.lm.w.data.fill_(30)
        k.record(*readings[3])
        k.restore()
    assert again.kept_step == keep.kept_step == 20 and again.lm.w[0].item() == 20
    assert again.outcome() == keep.outcome()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["candidate-10.safetensors"]


def test_a_checkpoint_of_an_earlier_version_resumes_its_best_so_far(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.full((2,), 7.0)}, tmp_path / "best_so_far.safetensors")
    keep = KeepBest(_Weights())
    keep.load(tmp_path, {"best_score": 80.0, "best_step": 7, "scores": [[7, 80.0], [9, 60.0]],
                         "best_is_checkpoint": False})
    keep.restore()
    assert keep.kept_step == 7 and keep.lm.w[0].item() == 7.0


def test_shipped_requests():
    requests = [ex.input for ex in load_requests()]
    assert len(requests) == 100 and len(set(requests)) == 100 and all(requests)
    assert [ex.input for ex in load_requests(limit=7)] == requests[:7]
    assert [json.loads(line)["prompt"] for line in GUARD_SET.read_text().splitlines()] == guard_requests()


@pytest.mark.parametrize("content, error", [
    ('{"prompt": "a"}\nnot json\n', ":2: malformed JSON"),
    ('{"prompt": "a"}\n{"prompt": "  "}\n', ":2: field 'prompt' is empty"),
    ('{"prompt": "a"}\n{"text": "b"}\n', ":2: a guard request needs a non-empty string field 'prompt'"),
    ("\n\n", "dataset is empty"),
])
def test_bad_request_files_are_one_line_naming_the_line(tmp_path, content, error):
    path = tmp_path / "mine.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=error.replace("(", r"\(").replace(")", r"\)")):
        load_requests(path)


def test_requests_come_in_any_shape_the_training_data_does(tmp_path):
    """A .txt line, a bare prompt, a prompt and its completion (the prompt is asked), a conversation (every turn
    before its last answer is asked)."""
    from promot.config import DataConfig

    text = tmp_path / "mine.txt"
    text.write_text("a b c question :\n\nd e question :\n")
    assert [ex.input for ex in load_requests(text)] == ["a b c question :", "d e question :"]
    shapes = tmp_path / "mine.jsonl"
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yes"},
            {"role": "user", "content": "and ?"}, {"role": "assistant", "content": "no"}]
    shapes.write_text("".join(json.dumps(r) + "\n" for r in [
        {"prompt": "say it"}, {"prompt": "say more", "completion": "True"}, {"messages": chat},
        {"instruction": "list two", "output": "a, b"}]))
    got = load_requests(shapes, DataConfig())
    assert [ex.input for ex in got[:2]] == ["say it", "say more"] and all(ex.target == "" for ex in got)
    assert list(got[2].messages) == chat[:3] and got[3].messages[-1] == {"role": "user", "content": "list two"}


def test_leakage_is_one_for_answers_in_the_format_and_zero_outside_with_and_without_a_chat_template():
    from test_conversations import TINY_TEMPLATE

    model, tok = make_model("llama"), make_tokenizer()
    requests = [Example(r, "", f"r{i}") for i, r in enumerate(["a b c question :", "d e f question :", "g h it :"])]
    plain = LeakageGuard(requests, AnswerFormat(("True", "False")), tok, 64, chat=False, max_new_tokens=2)
    tok_chat = make_tokenizer()
    tok_chat.chat_template = TINY_TEMPLATE
    chat = LeakageGuard(requests, AnswerFormat(("True", "False")), tok_chat, 64, chat=True, max_new_tokens=2)
    assert chat.tokenizing.prompt_only(chat.examples[0]) != plain.tokenizing.prompt_only(plain.examples[0])
    assert chat.tokenizing.prompt_only(chat.examples[0])[-3:] == tok_chat("<s> assistant :",
                                                                           add_special_tokens=False)["input_ids"]
    for guard in (plain, chat):
        answers = guard.answers(model)
        firsts = tuple({first_word(a) for a in answers})
        assert len(answers) == 3 and all(firsts)
        outside = tuple(w for w in ("True", "False", "is", "it", "has", "?") if w not in firsts)
        guard.fmt = AnswerFormat(firsts)
        assert guard.measure(model) == 1.0
        guard.fmt = AnswerFormat(outside)
        assert guard.measure(model) == 0.0


def _fake_guard(monkeypatch, leaks, scores):
    """The guard reads `leaks` in turn (step 0 first) and stage 2's selection sees `scores` (stage 1's: 0)."""
    leaks = itertools.chain(leaks, itertools.repeat(leaks[-1]))
    monkeypatch.setattr(LeakageGuard, "measure", lambda self, model: next(leaks))
    scores = itertools.chain(scores, itertools.repeat(scores[-1]))
    monkeypatch.setattr("promot.training.multitask.target_score", lambda lm, *a, **k: 0.0 if lm.prompt is not None and
                        lm.prompt.requires_grad else next(scores))


def test_a_flagged_run_says_so_in_run_json_model_card_report_and_last_line(tiny_dirs, task_files, tmp_path,
                                                                           monkeypatch, capsys):
    """No checkpoint near the best target stays under the ceiling: the least leaking of them is kept, and every
    record says the protection did not hold, with the figures (base, kept, the best step's)."""
    import yaml

    from promot.cli import main
    from promot.report.render import render

    _fake_guard(monkeypatch, [0.0, 0.5, 0.6, 0.7], [50.0, 60.0, 70.0, 80.0])
    cfg = run_config(tiny_dirs["llama"], task_files, tmp_path / "run",
                     stage1={"steps": 2, "lr": 0.3, "batch_size": 8, "eval_every": 0},
                     stage2={"steps": 3, "lr": 1e-3, "batch_size": 8, "eval_every": 1},
                     guard={"target_tolerance": 15})
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path)]) == 0
    run = tmp_path / "run"
    record = read_run_info(run)
    g = record.guard
    assert (g.step, g.leakage, g.base, g.best_step, g.best_leakage, g.held) == (2, 0.6, 0.0, 3, 0.7, False)
    assert record.stages["stage2"]["best_step"] == 2 and record.stages["stage2"]["best_score"] == 70.0
    assert [s["guard_leakage"] for s in record.stages["stage2"]["scores"]] == [0.0, 0.5, 0.6, 0.7]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["eval_guard_leakage"] for m in metrics if "eval_guard_leakage" in m] == [0.0, 0.5, 0.6, 0.7]
    json_guard = json.loads((run / "run.json").read_text())["guard"]
    assert json_guard["held"] is False and json_guard["leakage"] == 0.6
    card = (run / "model" / "README.md").read_text()
    assert "the protection did not hold" in card and "60.0% at step 2" in card and "best target step 3: 70.0%" in card
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "NOT PROTECTED" in last and "60.0% at step 2" in last and "base 0.0%" in last
    page = render([run], tmp_path / "report").read_text()
    assert "NOT PROTECTED" in page and "60.0% at step 2" in page


def test_plain_fine_tuning_is_guarded_too_and_its_start_is_measured_before_training(tiny_dirs, task_files, tmp_path,
                                                                                   monkeypatch):
    """Without a scored start the base reading is taken before the first step; the guard selects for every
    method."""
    import promot.api

    _fake_guard(monkeypatch, [0.02, 0.3, 0.05], [60.0, 65.0])
    cfg = run_config(tiny_dirs["llama"], task_files, tmp_path / "run", method="finetune",
                     stage2={"steps": 2, "lr": 1e-3, "batch_size": 8, "eval_every": 1, "eval_on_start": False},
                     guard={"data": str(_tiny_requests(tmp_path)), "target_tolerance": 10})
    record = read_run_info(promot.api.train(cfg))
    assert record.guard.base == 0.02 and record.guard.step == 2 and record.guard.held
    assert record.stages["stage2"]["best_step"] == 2 and record.stages["stage2"]["best_score"] == 65.0
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"stage": "stage2", "step": 0, "guard_leakage": 0.02} in metrics
    timing = metrics[-1]  # what the guard adds to the stage, for its cost
    assert timing["stage"] == "stage2" and 0 <= timing["guard_seconds"] <= timing["stage_seconds"]


def test_a_run_without_the_guard_selects_on_the_target_alone(tiny_dirs, task_files, tmp_path, monkeypatch):
    import promot.api

    _fake_guard(monkeypatch, [0.0, 0.9], [60.0, 65.0, 64.0])
    cfg = run_config(tiny_dirs["llama"], task_files, tmp_path / "run", method="finetune",
                     stage2={"steps": 2, "lr": 1e-3, "batch_size": 8, "eval_every": 1}, guard={"enabled": False})
    record = read_run_info(promot.api.train(cfg))
    assert record.guard is None and record.stages["stage2"]["best_step"] == 1


def _tiny_requests(tmp_path):
    path = tmp_path / "guard.txt"
    path.write_text("".join(f"{a} {b} {c} question : it has {d} ? answer :\n"
                            for a, b, c, d in ["abcd", "efgh", "ijab", "cdef", "ghij", "bdfh"]))
    return path


@pytest.mark.parametrize("guard, error", [
    ({"data": "NO"}, "guard.data: NO: file not found"),
    ({"data": "EMPTY"}, "EMPTY: dataset is empty"),
    ({"format_regex": "(True"}, "guard.format_regex is not a valid, non-empty regex: '(True'"),
    ({"format_regex": ""}, "guard.format_regex is not a valid, non-empty regex: ''"),
    ({"data": ""}, "guard.data: : file not found"),
    ({"limit": 0}, "guard.limit must be a positive integer or null, got 0"),
    ({"ceiling": 1e9}, "guard.ceiling must be in [0, 100] points, got 1000000000.0"),
    ({"ceiling": -1}, "guard.ceiling must be in [0, 100] points, got -1"),
    ({"target_tolerance": "wide"}, "guard.target_tolerance must be a finite number, got 'wide'"),
    ({"target_tolerance": -3}, "guard.target_tolerance must be in [0, 100] points or null, got -3"),
    ({"max_new_tokens": 0}, "guard.max_new_tokens must be a positive integer or null, got 0"),
])
def test_bad_guard_settings_are_one_line_exit_2_and_nothing_written(tiny_dirs, task_files, tmp_path, capsys,
                                                                    guard, error):
    import yaml

    from promot.cli import main

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    guard = {k: str(tmp_path / "no.txt") if v == "NO" else str(empty) if v == "EMPTY" else v for k, v in guard.items()}
    error = error.replace("NO", str(tmp_path / "no.txt")).replace("EMPTY", str(empty))
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(run_config(tiny_dirs["llama"], task_files, tmp_path / "run", guard=guard)))
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert error in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def _flag(run, held=False):
    info = json.loads((run / "run.json").read_text())
    info["guard"] = {"base": 0.0, "leakage": 0.4, "ceiling": 5.0, "tolerance": 3.0, "held": held, "step": 10,
                     "best_step": 10, "best_leakage": 0.4}
    (run / "run.json").write_text(json.dumps(info))


def test_compare_never_names_a_flagged_run_as_keeping_the_most_without_its_flag(tmp_path):
    from test_frontier import _four

    from promot.report.frontier import console_frontier, frontier_headline
    from promot.report.tables import load_runs

    runs = _four(tmp_path)
    assert "flagged" not in frontier_headline(runs)
    _flag(tmp_path / "pm")
    _flag(tmp_path / "ft", held=True)
    runs = load_runs([r.path for r in runs])
    assert "`pm (promot)` (flagged: its leakage guard says the protection did not hold) keeps the most" in \
        frontier_headline(runs)
    table = console_frontier(runs)
    assert next(line for line in table if line.startswith("pm ")).split()[-2:] == ["FLAGGED", "yes"]
    assert next(line for line in table if line.startswith("ft ")).split()[-2:] == ["40.0", "yes"]


def test_the_seed_headline_says_how_many_seeds_of_the_winner_are_flagged(tmp_path):
    from test_seeds import _noisy, _seeds

    from promot.report.frontier import frontier_headline
    from promot.report.tables import load_runs

    pm = _seeds(tmp_path, "promot", [_noisy(20, 22), _noisy(21, 20), _noisy(22, 21)])
    ft = _seeds(tmp_path, "finetune", [_noisy(2, 1), _noisy(0, 1), _noisy(1, 2)])
    _flag(pm[1])
    text = frontier_headline(load_runs([*ft, *pm]))
    assert "`promot` (flagged in 1 of 3 seeds: its leakage guard says the protection did not hold) keeps the most" \
        in text


def test_wise_ft_keeps_the_least_leaking_alpha_near_the_best_and_its_verdict_is_on_that_model(
        tiny_dirs, task_files, tmp_path, monkeypatch):
    """The guard reads every α too; the run's verdict is on the interpolated model it saves."""
    import promot.api

    _fake_guard(monkeypatch, [0.0, 0.1, 0.1, 0.0, 0.3, 0.2], [50.0, 60.0, 70.0, 10.0, 95.0, 100.0])
    cfg = run_config(tiny_dirs["llama"], task_files, tmp_path / "run", method="wise-ft",
                     stage2={"steps": 2, "lr": 1e-3, "batch_size": 8, "eval_every": 1},
                     wise_ft={"alphas": [0.0, 0.5, 1.0], "tolerance": 10.0}, guard={"target_tolerance": 0})
    record = read_run_info(promot.api.train(cfg))
    assert record.stages["stage2"]["best_step"] == 2 and record.stages["wise-ft"]["best_alpha"] == 1.0
    assert [s["guard_leakage"] for s in record.stages["wise-ft"]["scores"]] == [0.0, 0.3, 0.2]
    g = record.guard
    assert (g.alpha, g.step, g.leakage, g.held) == (1.0, 2, 0.2, False)
    assert "20.0% at α 1 of step 2" in g.describe()
