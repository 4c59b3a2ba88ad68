"""`bf16: auto` resolves to what the hardware runs natively; forcing slow bf16 and bf16-stored weights warn."""
from __future__ import annotations

import logging

import pytest

from promot import precision
from promot.config import load_config
from promot.errors import ConfigError


@pytest.fixture(autouse=True)
def fresh_log(monkeypatch):
    monkeypatch.setattr(precision, "_said", set())  # each test sees the once-per-process lines


def _hardware(monkeypatch, native: bool) -> None:
    monkeypatch.setattr(precision, "native_bf16", lambda: (native, "CPU has it" if native else "CPU lacks it"))


@pytest.mark.parametrize("native", [True, False])
def test_auto_follows_the_hardware_and_says_why(native, monkeypatch, caplog):
    _hardware(monkeypatch, native)
    with caplog.at_level(logging.INFO, logger="promot.precision"):
        assert precision.resolve_bf16("auto") is native
        precision.resolve_bf16("auto")  # a second stage: no second line
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and ("bf16 autocast" if native else "fp32") in lines[0] and ("lacks" in lines[0]) is not native


@pytest.mark.parametrize("native", [True, False])
def test_explicit_setting_wins_and_forced_slow_bf16_warns(native, monkeypatch, caplog):
    _hardware(monkeypatch, native)
    with caplog.at_level(logging.INFO, logger="promot.precision"):
        assert precision.resolve_bf16(False) is False
        assert precision.resolve_bf16(True) is True
        assert precision.resolve_bf16("auto", fp16=True) is False  # fp16 (CUDA) unchanged: bf16 stays off
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == (0 if native else 1)
    if warnings:
        assert "bf16: true" in warnings[0] and "auto" in warnings[0]


def test_native_bf16_reads_the_mkldnn_check_on_cpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for flag in (True, False):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda flag=flag: flag)
        assert precision.native_bf16()[0] is flag


def test_config_default_is_auto_and_values_are_checked():
    base = {"model": {"name": "m"}, "data": {"train": "t.jsonl"}}
    assert load_config(base).bf16 == "auto"
    assert load_config(base, ["bf16=false"]).bf16 is False
    assert load_config(base, ["fp16=true"]).fp16  # auto leaves room for fp16
    with pytest.raises(ConfigError, match="bf16 must be true, false or auto"):
        load_config(base, ["bf16=sometimes"])
    with pytest.raises(ConfigError, match="alternatives"):
        load_config(base, ["bf16=true", "fp16=true"])


def test_training_weights_stored_in_bf16_warns(caplog):
    with caplog.at_level(logging.WARNING, logger="promot.precision"):
        precision.check_weights_dtype("float32", True)
        precision.check_weights_dtype("bfloat16", False)  # LoRA / prompt tuning: base weights are not updated
        assert not caplog.records
        precision.check_weights_dtype("bfloat16", True)
    assert len(caplog.records) == 1 and "round away" in caplog.records[0].getMessage()
