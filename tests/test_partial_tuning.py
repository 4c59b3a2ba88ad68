"""Methods that train only part of the model: `freeze` (embeddings and the bottom blocks frozen; Zheng et al., ICLR
2025) and `value-only` (only the attention value projections; Lee, Sohn and Lee, 2026). Each on a tiny model built
in the test: what is frozen comes back bit-identical, everything trained has moved."""
from __future__ import annotations

import pytest
import torch
from conftest import make_model, run_config
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

import promot
from promot.errors import ConfigError

STAGE = {"steps": 3, "lr": 1e-2, "eval_every": 0, "eval_on_start": False}


def _train_and_compare(tiny_dirs, task_files, out, method, **over) -> tuple[set[str], set[str]]:
    """(names of tensors equal to the base's, names that moved) in the saved model."""
    run = promot.train(run_config(tiny_dirs["llama"], task_files, out, method=method, stage2=STAGE, **over))
    tuned = load_file(run / "model" / "model.safetensors")
    base = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"]).state_dict()
    same = {k for k in tuned if torch.equal(tuned[k], base[k])}
    return same, set(tuned) - same


def test_freeze_keeps_the_embeddings_and_bottom_blocks_bit_identical_and_trains_the_rest(tiny_dirs, task_files,
                                                                                        tmp_path):
    same, moved = _train_and_compare(tiny_dirs, task_files, tmp_path / "run", "freeze", freeze={"layers": 1})
    frozen = {k for k in same | moved if k.startswith(("model.embed_tokens.", "model.layers.0."))}
    assert frozen and same == frozen
    assert any(k.startswith("model.layers.1.") for k in moved) and "model.norm.weight" in moved


def test_value_only_moves_the_value_projections_and_nothing_else(tiny_dirs, task_files, tmp_path):
    same, moved = _train_and_compare(tiny_dirs, task_files, tmp_path / "run", "value-only")
    assert moved == {"model.layers.0.self_attn.v_proj.weight", "model.layers.1.self_attn.v_proj.weight"}
    assert {"model.embed_tokens.weight", "model.layers.0.self_attn.k_proj.weight"} <= same


@pytest.mark.parametrize("arch, stacks, values", [
    ("llama", {"model.layers"}, 2),
    ("t5", {"encoder.block", "decoder.block"}, 6),  # the decoder's cross-attention has a value projection too
])
def test_each_architecture_has_its_blocks_and_value_projections_found_by_role(arch, stacks, values):
    from types import SimpleNamespace

    from promot.methods.freeze import FreezeConfig
    from promot.models.roles import block_stacks, value_projections
    from promot.training.methods.freeze import FREEZE

    model = make_model(arch)
    assert {name for name, _ in block_stacks(model)} == stacks
    assert len(value_projections(model)) == values
    FREEZE.prepare(model, SimpleNamespace(cfg=SimpleNamespace(freeze=FreezeConfig(fraction=0.5))))
    for name, p in model.named_parameters():
        bottom = any(name.startswith(f"{s}.0.") for s in stacks)
        assert p.requires_grad != (bottom or "embed" in name or name == "shared.weight"), name


@pytest.mark.parametrize("arch, over, message", [
    ("llama", {"method": "freeze", "freeze": {"layers": 2}}, "freeze.layers=2 must be below the 2 blocks of "
                                                              "model.layers"),
    ("llama", {"method": "freeze", "freeze": {"fraction": 1.5}}, "freeze.fraction must be in (0, 1), got 1.5"),
    ("llama", {"method": "freeze", "freeze": {"layers": 0}}, "freeze.layers must be a positive integer, got 0"),
    ("llama", {"method": "value-only", "value_only": {"lr": 0}}, "value_only.lr must be a positive number"),
    ("gpt2", {"method": "value-only"}, "method value-only needs the attention value projections of GPT2LMHeadModel: "
                                       "its attention holds query, key and value in one matrix "
                                       "(transformer.h.0.attn.c_attn)"),
])
def test_partial_tuning_settings_the_model_cannot_take_are_refused_in_one_line(arch, over, message, tiny_dirs,
                                                                              task_files, tmp_path):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        promot.train(run_config(tiny_dirs[arch], task_files, tmp_path / "run", **over))
    assert "\n" not in str(e.value)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("method, over, want", [
    ("freeze", {"freeze": {"lr": 5e-4}}, (5e-4, "freeze.lr")),
    ("value-only", {"value_only": {"lr": 2e-3}}, (2e-3, "value_only.lr")),
    ("value-only", {}, (1e-2, "stage2.lr")),
])
def test_partial_tuning_trains_at_its_own_sections_lr(method, over, want):
    from promot.config import load_config
    from promot.methods import stage2_lr

    cfg = {"model": {"name": "m"}, "data": {"train": "t.jsonl"}, "method": method, "stage2": {"lr": 1e-2}, **over}
    assert stage2_lr(load_config(cfg)) == want
