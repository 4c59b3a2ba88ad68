"""weights_first: a few CPU fp32 rows go through the weights-first product, everything else through F.linear, the
logits stay those of the plain model, and every layer gets its own forward back."""
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


def test_bias_and_shape_follow_f_linear():
    torch.manual_seed(0)
    layer = torch.nn.Linear(8, 5)
    x = torch.randn(3, 2, 8)
    with torch.no_grad(), wf.weights_first(layer):
        out = layer(x)
    assert out.shape == (3, 2, 5) and out.is_contiguous()
    torch.testing.assert_close(out, torch.nn.functional.linear(x, layer.weight, layer.bias))


def test_other_dtypes_and_replaced_forwards_are_left_alone():
    torch.manual_seed(0)
    plain, hooked = torch.nn.Linear(8, 5).to(torch.bfloat16), torch.nn.Linear(8, 5)
    hooked.forward = lambda x: torch.zeros(x.shape[0], 5)  # as accelerate's hooks replace forward
    model = torch.nn.Sequential(plain, hooked)
    with mock.patch.object(wf.torch, "mm", wraps=torch.mm) as mm, torch.no_grad(), wf.weights_first(model):
        plain(torch.randn(4, 8, dtype=torch.bfloat16))
        assert not hooked(torch.randn(4, 8)).any()
    assert mm.call_count == 0


def test_every_layer_gets_its_forward_back_after_an_error():
    model = make_model("llama")
    with pytest.raises(RuntimeError, match="inside"), wf.weights_first(model):
        assert any("forward" in vars(m) for m in model.modules())
        raise RuntimeError("inside")
    assert not any("forward" in vars(m) for m in model.modules() if type(m) is torch.nn.Linear)
