"""Multi-task ProMoT: one prompt per task, a mixed stage 2 where each example carries its own task's prompt."""
from __future__ import annotations

import dataclasses
import json
from collections import Counter

import pytest
import torch
from conftest import run_config

import promot
from promot.api import load_run
from promot.cli import main
from promot.prompt import load_prompt
from promot.training.multitask import mixing_weights, mixture


def _multitask(tiny_dirs, task_files, out, method="promot", **over):
    cfg = run_config(tiny_dirs["llama"], task_files, out, method=method, **over)
    data = cfg.pop("data")
    cfg["tasks"] = [
        {"name": "label", "data": data},
        {"name": "echo", "data": {**data, "completion": "{hypothesis}"}, "metric": "exact_match",
         "max_new_tokens": 4},
    ]
    return cfg


def test_mixing_weights_and_mixture():
    assert mixing_weights([100, 25], "proportional") == [0.8, 0.2]
    t = mixing_weights([100, 25], "temperature", 2.0)
    assert t[0] == pytest.approx(10 / 15)
    assert mixing_weights([100, 25], "explicit", explicit=[1, 3]) == [0.25, 0.75]
    rows = [[{"input_ids": [i]} for i in range(5)], [{"input_ids": [100 + i]} for i in range(3)]]
    mixed = mixture(rows, [0.5, 0.5], 400, seed=0)
    counts = Counter(r["task_id"] for r in mixed)
    assert 150 < counts[0] < 250 and counts[0] + counts[1] == 400
    assert all((r["input_ids"][0] >= 100) == (r["task_id"] == 1) for r in mixed)  # each row keeps its own task
    assert mixed == mixture(rows, [0.5, 0.5], 400, seed=0)


def test_a_single_task_run_is_a_plan_of_one_task(tiny_dirs, task_files, tmp_path):
    """One task plan: a single-task run's one task is its `data` (no name, eval's metric), trained and scored by the
    same code as declared tasks, and stage 2 attaches the same form of prompt: a bank [N, P, H], N = 1 here."""
    from promot.api import prepare
    from promot.training.loop import StageContext, score_target
    from promot.training.multitask import TaskTarget

    single = prepare(run_config(tiny_dirs["llama"], task_files, tmp_path / "one"))
    (task,) = single.tasks
    assert task.name is None and task.rows is single.rows and task.validation == single.data.validation
    assert task.metric == single.cfg.eval.metric and single.stage2_rows is single.rows
    assert single.prompt.shape == (1, 4, 32) and len(single.prompts) == 1
    several = prepare(_multitask(tiny_dirs, task_files, tmp_path / "two"))
    assert [t.name for t in several.tasks] == ["label", "echo"] and several.prompt.shape == (2, 4, 32)
    assert {r["task_id"] for r in several.rows} == {0, 1} and several.tasks[1].metric == "exact_match"
    # a context built from data alone scores through the same one-task plan as the pipeline's own
    ctx = StageContext(single.cfg, single.tokenizer, single.tokenizing, single.rows, single.data.validation, tmp_path)
    assert isinstance(ctx.targets[0], TaskTarget) and ctx.targets[0].validation == task.validation
    with pytest.raises(dataclasses.FrozenInstanceError):  # a stage that needs other rows gets its own copy
        ctx.train_rows = []
    from promot.prompt import PromptedLM

    lm = PromptedLM(single.model, single.prompt).eval()
    same = StageContext(single.cfg, single.tokenizer, single.tokenizing, single.rows, [], tmp_path, targets=[task])
    assert score_target(lm, ctx) == score_target(lm, same)


def test_multitask_promot_keeps_one_prompt_per_task(tiny_dirs, task_files, tmp_path):
    pt = promot.train(_multitask(tiny_dirs, task_files, tmp_path / "pt", method="prompt-tuning"))
    run = promot.train(_multitask(tiny_dirs, task_files, tmp_path / "promot"))
    info = json.loads((run / "run.json").read_text())
    assert info["tasks"] == ["label", "echo"] and info["prompt"] is None
    assert set(info["stages"]) == {"stage1-label", "stage1-echo", "stage2"}
    assert info["stages"]["stage1-echo"]["scores"]  # scored with its own metric on its own validation set
    for task in ("label", "echo"):
        # stage 2 left every prompt bit-identical to what stage 1 made (the prompt-tuning run = stage 1 alone)
        assert torch.equal(load_prompt(run / "prompts" / task).embeddings, load_prompt(pt / "prompts" / task).embeddings)
    assert not torch.equal(load_prompt(run / "prompts" / "label").embeddings,
                           load_prompt(run / "prompts" / "echo").embeddings)
    assert load_run(run, prompt_name="echo").lm.prompt.shape == (4, 32)
    assert main(["generate", str(run), "a b c question : it has a ? answer :", "--prompt-name", "label",
                 "--max-new-tokens", "2"]) == 0


def test_multitask_finetune_is_the_baseline_without_prompts(tiny_dirs, task_files, tmp_path):
    cfg = _multitask(tiny_dirs, task_files, tmp_path / "ft", method="finetune", mixing="explicit")
    cfg["tasks"][0]["weight"], cfg["tasks"][1]["weight"] = 3, 1
    run = promot.train(cfg)
    info = json.loads((run / "run.json").read_text())
    assert info["prompts"] == {} and not (run / "prompts").exists() and not (run / "prompt").exists()
    assert set(info["stages"]) == {"stage2"} and info["stages"]["stage2"]["scores"]


def test_multitask_config_errors(tiny_dirs, task_files, tmp_path, capsys):
    cfg = _multitask(tiny_dirs, task_files, tmp_path / "bad", mixing="explicit")
    (tmp_path / "c.yaml").write_text(json.dumps(cfg))
    assert main(["train", str(tmp_path / "c.yaml")]) == 2
    assert "tasks[].weight" in capsys.readouterr().err
    cfg["tasks"][1]["name"] = "label"
    cfg["mixing"] = "proportional"
    (tmp_path / "c.yaml").write_text(json.dumps(cfg))
    assert main(["train", str(tmp_path / "c.yaml")]) == 2
    assert "unique" in capsys.readouterr().err


def test_shipped_multitask_example_loads():
    from pathlib import Path

    from promot.config import load_config

    cfg = load_config(Path(__file__).parents[1] / "examples" / "world" / "multitask.yaml")
    assert [t.name for t in cfg.tasks] == ["true_false", "brackets"] and cfg.tasks[1].metric == "exact_match"
