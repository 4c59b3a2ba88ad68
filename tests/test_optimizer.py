"""Optimizer settings the paper used, and the per-step update size that tells them apart."""
from __future__ import annotations

import json

import pytest
from conftest import run_config

import promot
from promot.errors import ConfigError


def _update_ratios(run) -> list[float]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [x["update_ratio"] for x in lines if x["stage"] == "stage2" and "update_ratio" in x]


@pytest.mark.parametrize("scale", [True, False])
def test_parameter_scaled_adafactor_moves_weights_by_lr_relative_to_their_size(scale, tiny_dirs, task_files, tmp_path):
    lr = 1e-3
    stage2 = {"steps": 5, "lr": lr, "batch_size": 8, "eval_every": 0, "eval_on_start": False, "warmup_steps": 0,
              "scale_parameter": scale}
    run = promot.train(run_config(tiny_dirs["llama"], task_files, tmp_path / "run", method="finetune", stage2=stage2))
    ratios = _update_ratios(run)
    assert len(ratios) == 5  # logged every step at this length (logging_steps = 1)
    if scale:  # T5X: each tensor moves by at most lr × its RMS per step (update clipping bounds the rest)
        assert all(0.2 * lr < r <= lr * 1.001 for r in ratios), ratios
    else:  # fixed lr: ≈ lr per weight, i.e. ≈ 10 × lr relative to these small weights
        assert all(r > 5 * lr for r in ratios), ratios


def test_scale_parameter_is_refused_for_adamw(tiny_dirs, task_files, tmp_path):
    stage2 = {"steps": 2, "optimizer": "adamw", "scale_parameter": True}
    with pytest.raises(ConfigError, match="stage2.scale_parameter is an Adafactor option"):
        promot.train(run_config(tiny_dirs["llama"], task_files, tmp_path / "run", stage2=stage2))
    assert not (tmp_path / "run").exists()


def test_freeze_embeddings_keeps_the_embedding_and_trains_the_rest(tiny_dirs, task_files, tmp_path):
    from safetensors.torch import load_file

    stage2 = {"steps": 3, "lr": 1e-2, "eval_every": 0, "eval_on_start": False, "freeze_embeddings": True}
    run = promot.train(run_config(tiny_dirs["llama"], task_files, tmp_path / "run", method="finetune", stage2=stage2))
    base, tuned = load_file(tiny_dirs["llama"] / "model.safetensors"), load_file(run / "model" / "model.safetensors")
    emb = "model.embed_tokens.weight"
    assert (base[emb] == tuned[emb]).all()
    assert any(not (base[k] == tuned[k]).all() for k in base if k != emb and k in tuned)
