"""ProMoT's rivals as methods: WiSE-FT (weight interpolation), replay (mixed-in data, no prompt), L2-SP (a pull
toward the base weights). Each on the tiny Llama, asserting what the method does to the weights, data and loss."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import TEMPLATE, run_config
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

import promot
from promot.api import prepare
from promot.errors import ConfigError
from promot.prompt import PromptedLM

STAGE = {"steps": 3, "lr": 1e-2, "eval_every": 0, "eval_on_start": False}


def _weights(run) -> dict[str, torch.Tensor]:
    return load_file(run / "model" / "model.safetensors")


def _train(tiny_dirs, task_files, out, method, **over):
    over = {"method": method, "stage1": {**STAGE, "lr": 0.3}, "stage2": STAGE, **over}
    return promot.train(run_config(tiny_dirs["llama"], task_files, out, **over))


def test_wise_ft_alpha_one_is_finetune_alpha_zero_is_base_and_half_is_the_linear_merge(tiny_dirs, task_files, tmp_path):
    ft = _weights(_train(tiny_dirs, task_files, tmp_path / "ft", "finetune"))
    one = _weights(_train(tiny_dirs, task_files, tmp_path / "a1", "wise-ft", wise_ft={"alphas": [1.0]}))
    zero = _weights(_train(tiny_dirs, task_files, tmp_path / "a0", "wise-ft", wise_ft={"alphas": [0.0]}))
    half = _weights(_train(tiny_dirs, task_files, tmp_path / "a5", "wise-ft", wise_ft={"alphas": [0.5]}))
    base = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"]).state_dict()
    assert all(torch.equal(one[k], ft[k]) for k in ft)
    assert all(torch.equal(zero[k], base[k]) for k in zero)
    assert any(not torch.equal(ft[k], base[k]) for k in ft)
    for k in half:  # mergekit `linear`: (α·tuned + (1−α)·base) / (α + 1−α)
        torch.testing.assert_close(half[k], 0.5 * ft[k] + 0.5 * base[k])


def test_wise_ft_keeps_the_smallest_alpha_with_the_best_score_and_logs_the_curve(tiny_dirs, task_files, tmp_path,
                                                                                monkeypatch):
    # stage 2 scores its final weights once, then wise-ft scores each α in sorted order
    scores = iter([99.0, 10.0, 60.0, 60.0, 40.0])
    monkeypatch.setattr("promot.training.multitask.target_score", lambda *a, **k: next(scores))
    run = _train(tiny_dirs, task_files, tmp_path / "run", "wise-ft", wise_ft={"alphas": [1.0, 0.0, 0.6, 0.3]})
    info = json.loads((run / "run.json").read_text())
    h = info["stages"]["wise-ft"]
    assert h["best_alpha"] == 0.3 and h["best_score"] == 60.0  # tie between 0.3 and 0.6: nearer the base wins
    assert [s["alpha"] for s in h["scores"]] == [0.0, 0.3, 0.6, 1.0]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["alpha"], r["eval_target_score"]) for r in rows if r["stage"] == "wise-ft"]
    assert curve == [(0.0, 10.0), (0.3, 60.0), (0.6, 60.0), (1.0, 40.0)]
    assert any("at alpha 0.3" in line for line in promot.api.summary(run))
    assert "- wise-ft: selected α = 0.3" in (run / "model" / "README.md").read_text()  # the model card says so


def test_wise_ft_tolerance_trades_target_points_for_nearness_to_the_base(tiny_dirs, task_files, tmp_path, monkeypatch):
    scores = iter([99.0, 10.0, 58.0, 60.0])
    monkeypatch.setattr("promot.training.multitask.target_score", lambda *a, **k: next(scores))
    run = _train(tiny_dirs, task_files, tmp_path / "run", "wise-ft", wise_ft={"alphas": [0.0, 0.5, 1.0], "tolerance": 2})
    assert json.loads((run / "run.json").read_text())["stages"]["wise-ft"]["best_alpha"] == 0.5


def test_promot_wise_ft_keeps_the_prompt_of_stage_2(tiny_dirs, task_files, tmp_path):
    run = _train(tiny_dirs, task_files, tmp_path / "run", "promot-wise-ft", wise_ft={"alphas": [0.5]})
    ref = _train(tiny_dirs, task_files, tmp_path / "ref", "promot")
    a, b = (load_file(r / "prompt" / "adapter_model.safetensors") for r in (run, ref))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_replay_mixes_the_fraction_and_replayed_rows_go_without_the_prompt(tiny_dirs, task_files, tmp_path):
    cfg = run_config(tiny_dirs["llama"], task_files, tmp_path / "run", method="promot-replay",
                     stage2={**STAGE, "steps": 50, "batch_size": 8},
                     replay={"train": str(task_files["validation"]), "template": "{hypothesis} is it {label}",
                             "completion": "{label}", "fraction": 0.25})
    p = prepare(cfg)
    assert p.rows is not p.stage2_rows and len(p.stage2_rows) == 50 * 8
    replayed = [r for r in p.stage2_rows if not r["prompt_mask"]]
    assert 0.18 < len(replayed) / len(p.stage2_rows) < 0.32
    target_ids = {tuple(r["input_ids"]) for r in p.rows}
    assert all(tuple(r["input_ids"]) in target_ids for r in p.stage2_rows if r["prompt_mask"])
    assert not any(tuple(r["input_ids"]) in target_ids for r in replayed)


def test_a_row_without_the_prompt_sees_the_bare_model_in_a_prompted_batch(tiny_dirs):
    model = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"]).eval()
    lm = PromptedLM(model, torch.randn(4, model.config.hidden_size))
    ids = torch.tensor([[1, 4, 5, 6, 14], [1, 7, 8, 9, 15]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        mixed = lm(ids, mask, prompt_mask=torch.tensor([True, False])).logits
        prompted = lm(ids, mask).logits
        bare = PromptedLM(model, None)(ids, mask).logits
    torch.testing.assert_close(mixed[0], prompted[0])
    torch.testing.assert_close(mixed[1], bare[1], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(prompted[1], bare[1])


def test_replay_run_data_fingerprint_covers_the_replay_data(tiny_dirs, task_files, tmp_path):
    from promot.training.pipeline import data_fingerprint

    over = dict(method="replay", replay={"train": str(task_files["validation"]), "template": TEMPLATE,
                                         "completion": "{label}"})
    a = data_fingerprint(prepare(run_config(tiny_dirs["llama"], task_files, tmp_path / "a", **over)))
    over["replay"]["fraction"] = 0.5
    b = data_fingerprint(prepare(run_config(tiny_dirs["llama"], task_files, tmp_path / "b", **over)))
    assert a != b


def test_l2_sp_stays_nearer_the_base_than_finetune(tiny_dirs, task_files, tmp_path):
    base = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"]).state_dict()
    stage = {**STAGE, "steps": 6, "optimizer": "adamw", "lr": 1e-2}

    def distance(run) -> float:
        w = _weights(run)
        return sum(float((w[k] - base[k]).pow(2).sum()) for k in w)

    ft = distance(_train(tiny_dirs, task_files, tmp_path / "ft", "finetune", stage2=stage))
    sp = distance(_train(tiny_dirs, task_files, tmp_path / "sp", "l2-sp", stage2=stage, l2_sp={"weight": 50.0}))
    assert 0 < sp < 0.5 * ft


@pytest.mark.parametrize("over, message", [
    ({"method": "replay"}, "replay.train is required"),
    ({"method": "replay", "replay": {"train": "x.jsonl", "fraction": 1.5}}, "replay.fraction must be in (0, 1)"),
    ({"method": "wise-ft", "wise_ft": {"alphas": [0.5, 2]}}, "wise_ft.alphas must be a non-empty list"),
    ({"method": "wise-ft", "wise_ft": {"alphas": []}}, "wise_ft.alphas must be a non-empty list"),
    ({"method": "l2-sp", "l2_sp": {"weight": 0}}, "l2_sp.weight must be a positive number"),
    ({"method": "lora", "lora": {"lr": 0}}, "lora.lr must be a positive number, got 0"),
    ({"method": "lora", "lora": {"lr": -1e-3}}, "lora.lr must be a positive number, got -0.001"),
    ({"method": "lora", "lora": {"lr": "fast"}}, "lora.lr must be a finite number"),
])
def test_rival_settings_are_refused_in_one_line_before_anything_is_written(over, message, tiny_dirs, task_files,
                                                                           tmp_path):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        promot.train(run_config(tiny_dirs["llama"], task_files, tmp_path / "run", **over))
    assert "\n" not in str(e.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("method, over, want", [
    ("lora", {"lora": {"lr": 2e-3}}, (2e-3, "lora.lr")),
    ("promot-lora", {"lora": {"lr": 2e-3}}, (2e-3, "lora.lr")),
    ("finetune", {"lora": {"lr": 2e-3}}, (1e-2, "stage2.lr")),  # another room's lr leaves finetune alone
    ("replay", {"replay": {"lr": 5e-4}}, (5e-4, "replay.lr")),
    ("wise-ft", {"wise_ft": {"lr": 5e-4}}, (5e-4, "wise_ft.lr")),
    ("l2-sp", {"l2_sp": {"lr": 5e-4}}, (5e-4, "l2_sp.lr")),
    ("promot", {}, (1e-2, "stage2.lr")),
])
def test_each_method_trains_at_its_own_sections_lr(method, over, want):
    from promot.config import load_config
    from promot.methods import stage2_lr

    cfg = {"model": {"name": "m"}, "data": {"train": "t.jsonl"}, "replay": {"train": "r.jsonl"}, "method": method,
           "stage2": {"lr": 1e-2}}
    for section, values in over.items():
        cfg[section] = {**cfg.get(section, {}), **values}
    assert stage2_lr(load_config(cfg)) == want


def test_a_methods_own_lr_reaches_the_optimizer_and_the_record(tiny_dirs, task_files, tmp_path):
    """lora.lr: the LoRA run's optimizer steps at it (constant schedule), run.json and the report name it."""
    from promot.report.tables import load_runs, summary_table

    stage = {**STAGE, "lr_scheduler": "constant", "warmup_steps": 0, "optimizer": "adamw"}
    run = _train(tiny_dirs, task_files, tmp_path / "lora", "lora", stage2=stage, lora={"lr": 4e-3})
    info = json.loads((run / "run.json").read_text())
    assert info["stages"]["stage2"]["lr"] == 4e-3
    rates = {m["learning_rate"] for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
             if m.get("stage") == "stage2" and "learning_rate" in m}
    assert rates == {4e-3}, rates
    assert summary_table(load_runs([run]), "k=1", with_base=False)[1][1] == "lora, lr 0.004"
