"""promot eval on tiny models: leakage ~1 for a model trained to always answer True, ~0 for the base; metrics
computed right on fixtures; eval.json keeps lm-eval's result blocks."""
from __future__ import annotations

import json
import random
from dataclasses import replace

import pytest
import yaml
from conftest import LETTERS, run_config, write_jsonl

import promot
from promot.evaluate.metrics import (AnswerFormat, flips, item_scores, leakage, norm_avg, paired_bootstrap,
                                     primary_metric, proportion_ci)
from promot.errors import ConfigError
from promot.evaluate.runner import (EvalSpec, _deltas, evaluate, spec_from_options, summarize,
                                    summary_lines)



@pytest.fixture(scope="module")
def always_true_run(tiny_dirs, tmp_path_factory):
    """A tiny model fine-tuned until it answers 'True' to anything."""
    root = tmp_path_factory.mktemp("always_true")
    rng = random.Random(1)
    rows = [{"premise": " ".join(rng.sample(LETTERS, 3)), "hypothesis": "it has a", "label": "True"}
            for _ in range(64)]
    files = {"train": write_jsonl(root / "train.jsonl", rows), "validation": write_jsonl(root / "val.jsonl", rows[:8])}
    stage = {"steps": 40, "lr": 3e-3, "optimizer": "adamw", "eval_every": 0, "eval_on_start": False}
    over = {"method": "finetune", "stage2": stage, "data": {**run_config(tiny_dirs["llama"], files, root)["data"],
                                                             "template": "{premise} question :"}}
    return promot.train(run_config(tiny_dirs["llama"], files, root / "run", **over))


def test_leakage_is_high_after_collapse_and_low_for_the_base(always_true_run, tiny_task, tiny_dirs):
    spec = EvalSpec(tasks=["tiny_first"], shots=[1], include_path=[str(tiny_task)], batch_size=8)
    (path,) = evaluate([always_true_run], spec)
    data = json.loads(path.read_text())
    assert data["format"] == "{True}"
    assert data["variants"]["base"]["k=1"]["leakage"] < 0.2
    assert data["variants"]["tuned"]["k=1"]["leakage"] > 0.9
    assert data["variants"]["tuned"]["k=1"]["leakage_n"] == 24
    assert "tuned+prompt" not in data["variants"]  # finetune has no prompt
    raw = data["lm_eval"]["base"]["k=1"]["results"]["tiny_first"]
    assert "exact_match,none" in raw or any(k.startswith("exact_match") for k in raw)
    assert (always_true_run / "flips.md").is_file() and (always_true_run / "flips.jsonl").is_file()
    assert len(summary_lines(path)) == 4  # header, base, tuned, the run's own validation data
    # CIs: the collapse's leakage interval excludes the base's; the delta's interval holds the delta
    lo, hi = data["variants"]["tuned"]["k=1"]["leakage_ci"]
    assert lo > data["variants"]["base"]["k=1"]["leakage_ci"][1] and hi <= 1.0
    d = data["deltas"]["tuned"]["k=1"]
    assert d["ci"]["norm_avg"][0] <= d["norm_avg"] <= d["ci"]["norm_avg"][1]
    assert set(d["ci"]) == {"tiny_first", "norm_avg"}
    assert "[" in summary_lines(path)[2]  # the console table shows the interval
    from promot.eval_record import EvalRecord, read_eval

    assert read_eval(always_true_run).to_json() == EvalRecord.from_json(data).to_json() == data  # typed, lossless


def test_promot_run_gets_a_with_prompt_variant(tiny_dirs, task_files, tiny_task, tmp_path):
    run = promot.train(run_config(tiny_dirs["llama"], task_files, tmp_path / "run"))
    spec = EvalSpec(tasks=["tiny_first"], shots=[0, 1], include_path=[str(tiny_task)], limit=4)
    data = json.loads(evaluate([run], spec)[0].read_text())
    assert set(data["variants"]) == {"base", "tuned", "tuned+prompt"}
    assert set(data["variants"]["tuned+prompt"]) == {"k=0", "k=1"}
    assert data["format"] == "{False, True}"


def test_a_run_that_left_the_weights_alone_reuses_the_base_evaluation(tiny_dirs, task_files, tiny_task, tmp_path,
                                                                       monkeypatch):
    """prompt-tuning's `tuned` model is the base (same fingerprint): its variant is the base's results, not a
    second lm-eval pass; the prompted variant is still evaluated."""
    from promot.evaluate import runner

    run = promot.train(run_config(tiny_dirs["llama"], task_files, tmp_path / "run", method="prompt-tuning",
                                  stage1={"steps": 2, "lr": 0.3, "batch_size": 8, "eval_every": 2}))
    labels = []
    original = runner.run_all_shots
    monkeypatch.setattr(runner, "run_all_shots", lambda lm, tok, spec, manager, label: labels.append(label) or
                        original(lm, tok, spec, manager, label))
    spec = EvalSpec(tasks=["tiny_first"], shots=[1], include_path=[str(tiny_task)], limit=4)
    data = json.loads(evaluate([run], spec, base=str(tiny_dirs["llama"]))[0].read_text())
    assert labels == ["eval base", "eval run tuned+prompt"]
    assert data["variants"]["tuned"] == data["variants"]["base"]


def test_sequential_run_scores_each_carried_prompt(tiny_dirs, task_files, tiny_task, tmp_path):
    first = promot.train(run_config(tiny_dirs["llama"], task_files, tmp_path / "first"))
    cfg = run_config(tiny_dirs["llama"], task_files, tmp_path / "second", seed=1)
    cfg["model"] = {"init_from": str(first)}
    second = promot.train(cfg)
    spec = EvalSpec(tasks=["tiny_first"], shots=[0], include_path=[str(tiny_task)], limit=4)
    data = json.loads(evaluate([second], spec, base=str(tiny_dirs["llama"]))[0].read_text())
    assert set(data["variants"]) == {"base", "tuned", "tuned+prompt", "tuned+prompt:first"}


def test_unknown_task_is_a_clear_error(always_true_run):
    from promot.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown lm-eval task"):
        evaluate([always_true_run], EvalSpec(tasks=["no_such_task_xyz"], shots=[0]))


def test_metrics_on_fixtures():
    assert primary_metric({"alias": "t", "exact_match,none": 0.25, "exact_match_stderr,none": 0.1}) == (
        "exact_match,none", 25.0)
    assert primary_metric({"bleu,none": 12.5, "chrf,none": 40.0}) == ("bleu,none", 12.5)
    assert norm_avg({"a": 10.0, "b": 30.0}) == 20.0
    fmt = AnswerFormat(("True", "False"))
    assert leakage(["True", " false.", "Paris", "True or not", ""], fmt) == 0.6
    assert AnswerFormat(regex=r"\d+").matches("42\nmore") and not AnswerFormat(regex=r"\d+").matches("x")
    # one normalisation for selection and leakage: a label with punctuation counts the same in both
    from promot.evaluate.target import score
    assert AnswerFormat(("not_entailment",)).matches(" Not_entailment.")
    assert score([" Not_entailment."], ["not_entailment"], "accuracy") == 100.0
    base = [{"doc_id": 0, "exact_match": 1.0, "arguments": [["q0"]], "target": "a", "resps": [["a"]]},
            {"doc_id": 1, "exact_match": 0.0, "arguments": [["q1"]], "target": "b", "resps": [["x"]]}]
    tuned = [{"doc_id": 0, "exact_match": 0.0, "resps": [["True"]]}, {"doc_id": 1, "exact_match": 1.0, "resps": [["b"]]}]
    (flip,) = flips(base, tuned, "exact_match,none")
    assert flip == {"doc_id": 0, "input": "q0", "target": "a", "base": "a", "tuned": "True"}


def test_summary_norm_avg_excludes_target_and_deltas():
    def res(a, b, t):
        return {"results": {"a": {"exact_match,none": a}, "b": {"exact_match,none": b}, "t": {"acc,none": t},
                            "grp": {"exact_match,none": 0.0}},
                "samples": {"a": [{"resps": [["True"]]}], "b": [{"resps": [["x"]]}], "t": [{"resps": [["y"]]}]},
                "configs": {n: {"output_type": "generate_until"} for n in ("a", "b", "t")}}

    spec = EvalSpec(tasks=["a", "b", "t"], shots=[1], target_tasks=("t",))
    fmt = AnswerFormat(("True", "False"))
    base, tuned = summarize(res(0.5, 0.3, 0.5), spec, fmt), summarize(res(0.1, 0.1, 0.9), spec, fmt)
    assert base.norm_avg == pytest.approx(40.0) and set(base.tasks) == {"a", "b", "t"}
    assert base.leakage == 0.5 and base.leakage_n == 2 and base.icl_tasks == ["a", "b"]
    d = _deltas({"base": {"k=1": base}, "tuned": {"k=1": tuned}})["tuned"]["k=1"].values
    assert d["norm_avg"] == pytest.approx(-30.0) and d["t"] == pytest.approx(40.0)


def test_monitor_logs_icl_score_and_leakage_during_stage2(tiny_dirs, task_files, tiny_task, tmp_path):
    over = {"method": "finetune", "stage2": {"steps": 4, "lr": 1e-3, "eval_every": 0},
            "monitor": {"tasks": ["tiny_first"], "every": 2, "limit": 4, "include_path": [str(tiny_task)]}}
    run = promot.train(run_config(tiny_dirs["llama"], task_files, tmp_path / "run", **over))
    logs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    probes = [r for r in logs if "icl_score" in r]
    assert [r["step"] for r in probes] == [0, 2, 4] and all(r["stage"] == "stage2" for r in probes)
    assert all(0 <= r["icl_leakage"] <= 1 for r in probes)


def test_lm_eval_cli_with_the_promot_model(always_true_run, tiny_task, tmp_path):
    from promot.cli import main

    out = tmp_path / "lm_eval_out"
    code = main(["lm-eval", "run", "--model", "promot", "--model_args", f"run={always_true_run},prompt=off",
                 "--tasks", "tiny_first", "--include_path", str(tiny_task), "--limit", "3", "--device", "cpu",
                 "--output_path", str(out)])
    assert code == 0
    (result,) = list(out.rglob("results_*.json"))
    assert "tiny_first" in json.loads(result.read_text())["results"]


def test_target_tasks_are_scored_at_target_shots(always_true_run, tiny_task, tmp_path):
    spec = EvalSpec(tasks=["tiny_first"], shots=[1], include_path=[str(tiny_task)], limit=4,
                    target_tasks=("tiny_first",))
    (path,) = evaluate([always_true_run], spec)
    data = json.loads(path.read_text())
    assert data["lm_eval"]["tuned"]["k=1"]["n-shot"]["tiny_first"] == 0
    tuned = data["variants"]["tuned"]["k=1"]
    assert tuned["target_tasks"] == ["tiny_first"] and tuned["leakage_n"] == 0  # targets are not "other tasks"
    card = (always_true_run / "model" / "README.md").read_text()  # the model card gains the eval table
    assert "## Evaluation" in card and "| tuned | 1 |" in card and "tiny_first" in card


def _world_like(tf: float, brackets: float) -> dict:
    """Two fine-tuning formats marked in their YAML (as the world suite's true_false and brackets) + one ICL task."""
    target = {"output_type": "generate_until", "metadata": {"fine_tuning_target": True}}
    return {"results": {"world_true_false": {"exact_match,none": tf}, "world_brackets": {"exact_match,none": brackets},
                        "world_copy": {"exact_match,none": 0.5}},
            "samples": {t: [{"resps": [["x"]]}] for t in ("world_true_false", "world_brackets", "world_copy")},
            "configs": {"world_true_false": {**target, "dataset_kwargs": {"name": "true_false"}},
                        "world_brackets": {**target, "dataset_kwargs": {"name": "brackets"}},
                        "world_copy": {"output_type": "generate_until", "dataset_kwargs": {"name": "copy"}}}}


def test_headline_target_is_the_task_the_run_trained(tmp_path):
    """`--suite world` marks true_false and brackets; a run trained on true_false is headlined by it alone (69.0,
    not the 34.5 mean with the never-trained brackets); --target-task, when given, wins."""
    from promot.config import load_config
    from promot.report.tables import _target
    from promot.training.pipeline import dataset_names

    trained = dataset_names(load_config({"model": {"name": "world-tiny"},
                                         "data": {"train": "suites/world/data/true_false.train.jsonl"}}))
    assert trained == {"true_false"}
    spec = EvalSpec(tasks=["world", "world_target"], shots=[1])
    s = summarize(_world_like(0.69, 0.0), spec, None, trained)
    assert s.target_tasks == ("world_true_false",) and s.other_format_tasks == ("world_brackets",)
    assert _target(s) == "69.0" and s.norm_avg == pytest.approx(50.0)  # brackets stays out of Norm. Avg.
    explicit = summarize(_world_like(0.69, 0.0), replace(spec, target_tasks=("world_brackets",)), None, trained)
    assert explicit.target_tasks == ("world_brackets",) and explicit.other_format_tasks == ("world_true_false",)
    unknown = summarize(_world_like(0.69, 0.0), spec, None, {"train"})  # e.g. examples/has_a/train.jsonl
    assert unknown.target_tasks == ("world_brackets", "world_true_false")


def test_paired_bootstrap_intervals():
    same = {"a": [0.0, 100.0] * 20}
    assert paired_bootstrap(same, same)["norm_avg"] == [0.0, 0.0]  # paired: identical answers, no uncertainty
    base = {"a": [100.0] * 30 + [0.0] * 30, "b": [100.0] * 60}
    tuned = {"a": [0.0] * 60, "b": [100.0] * 60}
    ci = paired_bootstrap(base, tuned, iters=2000)
    assert ci["a"][1] < 0 and ci["b"] == [0.0, 0.0]
    # task a: delta −50 ± 1.96·sqrt(.25/60)·100 ≈ ±12.7; Norm. Avg. halves it (b contributes no variance)
    assert ci["a"][0] == pytest.approx(-62.7, abs=3) and ci["a"][1] == pytest.approx(-37.3, abs=3)
    assert ci["norm_avg"][0] == pytest.approx(-31.3, abs=2) and ci["norm_avg"][1] == pytest.approx(-18.7, abs=2)
    lo, hi = proportion_ci([1] * 10 + [0] * 90, iters=2000)
    assert lo == pytest.approx(0.04, abs=0.02) and hi == pytest.approx(0.16, abs=0.02)
    assert item_scores([{"doc_id": 1, "exact_match": 1.0}, {"doc_id": 0, "exact_match": 0.0}], "exact_match,none") == [
        0.0, 100.0]
    assert item_scores([{"doc_id": 0, "bleu": ("ref", "hyp")}], "bleu,none") is None  # corpus metric: no items


def test_contrast_between_methods_and_collapse_extrapolation():
    from promot.evaluate.metrics import contrast, crossing_step

    from promot.eval_record import VariantSummary

    def summary(icl_items, hits):
        return VariantSummary.from_json(
            {"tasks": {t: {"metric": "acc", "score": 0.0, "n": 1} for t in "at"}, "norm_avg": sum(icl_items) / 60,
             "target_tasks": ["t"], "items": {"a": icl_items, "t": [0.0]}, "leakage": sum(hits) / len(hits),
             "leak_hits": hits})

    keeps = summary([100.0] * 50 + [0.0] * 10, [0] * 60)
    forgets = summary([0.0] * 60, [1] * 40 + [0] * 20)
    c = contrast(keeps, forgets)
    assert c["norm_avg"] == pytest.approx(100 * 50 / 60) and c["norm_avg_ci"][0] > 60  # CI excludes 0
    assert c["leakage"] == pytest.approx(-40 / 60) and c["leakage_ci"][1] < -0.5
    # a logistic rise through 0.5 at step 300, seen only up to step 150
    import math
    points = [(s, 1 / (1 + math.exp(-(s - 300) / 100))) for s in (0, 50, 100, 150)]
    assert crossing_step(points) == pytest.approx(300, abs=15)
    assert crossing_step([(0, 0.3), (50, 0.2)]) is None  # falling: no collapse ahead
    assert crossing_step([(0, 0.0), (40, 0.2), (80, 0.2), (120, 0.2)]) is None  # rose, then levelled off


def test_chat_template_evaluation_puts_each_exemplar_in_its_own_turn(tiny_dirs, tiny_task, tmp_path):
    import shutil

    from transformers import AutoTokenizer

    model = tmp_path / "chat-model"
    shutil.copytree(tiny_dirs["llama"], model)
    tok = AutoTokenizer.from_pretrained(model)
    tok.chat_template = ("{% for m in messages %}{{ 'has it ' if m['role'] == 'user' else 'is it ' }}"
                         "{{ m['content'] }} {% endfor %}{% if add_generation_prompt %}is it{% endif %}")
    tok.save_pretrained(model)
    spec = EvalSpec(tasks=["tiny_first"], shots=[2], include_path=[str(tiny_task)], limit=3,
                    apply_chat_template=True, fewshot_as_multiturn=True)
    (path,) = evaluate([], spec, base=str(model), out=tmp_path / "out")
    data = json.loads(path.read_text())
    assert data["apply_chat_template"] and data["variants"]["base"]["k=2"]["tasks"]["tiny_first"]["n"] == 3
    plain = EvalSpec(tasks=["tiny_first"], shots=[2], include_path=[str(tiny_task)], limit=3)
    from promot.evaluate.runner import _base, run_all_shots, task_manager

    lm, tokenizer = _base(str(model), "float32")
    for s, turns in ((spec, 3), (plain, 0)):  # 2 exemplars + the question, each a user turn; none without
        res = run_all_shots(lm, tokenizer, s, task_manager(s.include_path, s.tasks))
        context = res["k=2"]["samples"]["tiny_first"][0]["arguments"][0][0]
        assert context.count("has it ") == turns and context.count("is it ") == (2 if turns else 0)


def test_spec_from_options_is_what_promot_eval_builds():
    """`promot eval`'s options as a Python call: comma strings or lists, a suite and its targets, the format."""
    assert spec_from_options() == EvalSpec(tasks=["mini"], shots=[1, 4])
    spec = spec_from_options(suite="world", shots="0, 2", labels="True,False", target_tasks="world_true_false",
                             bootstrap=0)
    assert spec == EvalSpec(tasks=["world", "world_target"], shots=[0, 2], target_tasks=("world_true_false",),
                            fmt=AnswerFormat(("True", "False")), bootstrap=0)
    assert spec_from_options(tasks=["a", "b"], shots=[4], format_regex="[A-Z]+").fmt == AnswerFormat((), "[A-Z]+")
    with pytest.raises(ConfigError, match="--fewshot-as-multiturn needs --apply-chat-template"):
        spec_from_options(fewshot_as_multiturn=True)
    with pytest.raises(ConfigError, match="--bootstrap: must be an integer >= 0, got -1"):
        spec_from_options(bootstrap=-1)
    for bad, match in [({"limit": 0}, "--limit: must be a positive integer, got 0"),
                       ({"shots": "abc"}, "--shots: must be comma-separated shot counts"),
                       ({"shots": [-1]}, "--shots: must be comma-separated shot counts, integers >= 0, got -1"),
                       ({"target_shots": True}, "--target-shots: must be an integer >= 0, got True"),
                       ({"batch_size": "2.5"}, "--batch-size: must be a positive integer, got '2.5'"),
                       ({"tasks": " , "}, "--tasks: name at least one")]:
        with pytest.raises(ConfigError, match=match):
            spec_from_options(**bad)


def test_every_monitor_probe_shows_the_same_exemplars_and_step_0_is_measured_once(tiny_dirs, tiny_task, monkeypatch):
    """Probes at different steps (or WiSE-FT α) differ only by the weights: lm-eval's few-shot RNG is re-seeded."""
    from types import SimpleNamespace

    import torch
    from transformers import AutoModelForCausalLM

    from promot.evaluate.lm_eval_model import PromptedHFLM
    from promot.evaluate.monitor import SpecializationMonitor
    from promot.models import load_model
    from promot.prompt import PromptedLM

    contexts = []
    original = PromptedHFLM.generate_until

    def recording(self, requests, *a, **k):
        contexts.append([r.args[0] for r in requests])
        return original(self, requests, *a, **k)

    monkeypatch.setattr(PromptedHFLM, "generate_until", recording)
    lm = PromptedLM(AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"]).eval())
    trainer = SimpleNamespace(model=lm, args=SimpleNamespace(bf16=False, world_size=1),
                              accelerator=SimpleNamespace(unwrap_model=lambda m: m),
                              state=SimpleNamespace(global_step=3))
    monitor = SpecializationMonitor(["tiny_first"], 1, None, load_model(str(tiny_dirs["llama"])).tokenizer,
                                    shots=2, limit=6, include_path=[str(tiny_task)])
    monitor.bind(trainer)
    monitor.measure()
    monitor.measure()
    assert len(contexts) == 2 and contexts[0] == contexts[1]
    assert all(c.count("question :") == 3 for c in contexts[0])  # 2 exemplars + the query: shots are drawn
    # step 0 is every method's start: within a compare, measured once per weights (a second method's step 0 reuses
    # it); outside one, every run measures its own
    from promot.shared_work import sharing

    trainer.state.global_step = 0
    with sharing():
        first = monitor.measure()
        assert monitor.measure() == first and len(contexts) == 3
        with torch.no_grad():
            lm.model.get_input_embeddings().weight[5] += 1.0  # other weights: measured again
        monitor.measure()
        assert len(contexts) == 4
    monitor.measure()
    assert len(contexts) == 5
