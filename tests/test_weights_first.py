"""weights_first: a few CPU fp32 rows through layers large enough go through the weights-first product, everything
else through F.linear, the logits stay those of the plain model, and every layer gets its own forward back."""
from __future__ import annotations

from unittest import mock

import pytest
import torch
from conftest import make_model

from promot.prompt import weights_first as wf


def _products(model, ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Logits of `ids` inside `weights_first`, and how many weights-first products ran."""
    with mock.patch.object(wf.torch, "mm", wraps=torch.mm) as mm, torch.no_grad(), wf.weights_first(model):
        logits = model(ids).logits
    return logits, mm.call_count


@pytest.fixture
def any_size(monkeypatch):
    """The tiny test models' layers count as large enough."""
    monkeypatch.setattr(wf, "LEAST_WEIGHTS", 0)


@pytest.mark.usefixtures("any_size")
@pytest.mark.parametrize(("rows", "used"), [(1, False), (2, True), (16, True), (65, False)])
def test_few_rows_go_weights_first_and_logits_stay(rows, used):
    torch.manual_seed(0)
    model = make_model("llama").eval()
    linears = sum(type(m) is torch.nn.Linear for m in model.modules())
    ids = torch.randint(3, model.config.vocab_size, (rows, 1))
    with torch.no_grad():
        plain = model(ids).logits
    logits, calls = _products(model, ids)
    assert calls == (linears if used else 0)
    torch.testing.assert_close(logits, plain, rtol=1e-5, atol=1e-5)


def test_layers_small_enough_to_sit_in_cache_keep_f_linear():
    model = make_model("llama").eval()  # hidden 32: every layer far under LEAST_WEIGHTS
    _, calls = _products(model, torch.randint(3, model.config.vocab_size, (16, 1)))
    assert calls == 0


@pytest.mark.usefixtures("any_size")
def test_bias_and_shape_follow_f_linear():
    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 5)
    x = torch.randn(3, 2, 8)
    with torch.no_grad(), wf.weights_first(layer):
        out = layer(x)
    assert out.shape == (3, 2, 5) and out.is_contiguous()
    torch.testing.assert_close(out, torch.nn.functional.linear(x, layer.weight, layer.bias))


@pytest.mark.usefixtures("any_size")
def test_other_dtypes_autocast_and_replaced_forwards_are_left_alone():
    torch.manual_seed(0)
    bf16, fp32, hooked = torch.nn.Linear(8, 5).to(torch.bfloat16), torch.nn.Linear(8, 5), torch.nn.Linear(8, 5)
    hooked.forward = lambda x: torch.zeros(x.shape[0], 5)  # as accelerate's hooks replace forward
    model = torch.nn.Sequential(bf16, fp32, hooked)
    with mock.patch.object(wf.torch, "mm", wraps=torch.mm) as mm, torch.no_grad(), wf.weights_first(model):
        bf16(torch.randn(4, 8, dtype=torch.bfloat16))
        assert not hooked(torch.randn(4, 8)).any()
        with torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 autocast: oneDNN's products, not MKL's fp32 ones
            assert fp32(torch.randn(4, 8)).dtype == torch.bfloat16
        assert mm.call_count == 0
        fp32(torch.randn(4, 8))  # the same layer outside autocast does go weights first
    assert mm.call_count == 1


@pytest.mark.usefixtures("any_size")
def test_every_layer_gets_its_forward_back_after_an_error():
    model = make_model("llama")
    with pytest.raises(RuntimeError, match="inside"), wf.weights_first(model):
        assert any("forward" in vars(m) for m in model.modules())
        raise RuntimeError("inside")
    assert not any("forward" in vars(m) for m in model.modules() if type(m) is torch.nn.Linear)
