"""What a stage changes on the model for itself (dropout, gradient checkpointing) is put back when it ends, however
it ends."""
from __future__ import annotations

import pytest
import torch
from conftest import make_model

from promot.config import StageConfig
from promot.training.stage_settings import stage_settings


def _attention_dropouts(model) -> list[float]:
    return [m.attention_dropout for m in model.modules() if isinstance(getattr(m, "attention_dropout", None), float)]


def test_a_stage_puts_its_dropout_and_gradient_checkpointing_back_even_when_it_fails():
    model = make_model("llama")
    before = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)], _attention_dropouts(model)
    with pytest.raises(RuntimeError, match="mid-stage"):
        with stage_settings(model, StageConfig(dropout=0.3, gradient_checkpointing=True)):
            assert model.is_gradient_checkpointing and set(_attention_dropouts(model)) == {0.3}
            raise RuntimeError("mid-stage")
    assert ([m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)], _attention_dropouts(model)) == before
    assert not model.is_gradient_checkpointing
