"""PromptedHFLM: lm-eval scores with a soft prompt equal a hand-computed reference, with and without the prompt."""
from __future__ import annotations

import pytest
import torch
from conftest import make_model, make_tokenizer
from lm_eval.api.instance import Instance

from promot.evaluate.lm_eval_model import PromptedHFLM
from promot.prompt import PromptedLM

PAIRS = [("a b c question : it has a ? answer :", " True"), ("d e question", " it has"), ("f", " g h i j")]


def _lm(prompt: bool, arch: str = "llama"):
    model = make_model(arch).eval()
    p = torch.randn(5, 32) * 2 if prompt else None
    return PromptedHFLM(PromptedLM(model, p), tokenizer=make_tokenizer(), batch_size=2, device="cpu")


@pytest.mark.parametrize("prompt", [True, False])
def test_loglikelihood_equals_reference(prompt):
    lm = _lm(prompt)
    reqs = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(PAIRS)]
    got = lm.loglikelihood(reqs)
    for (ctx, cont), (logprob, _) in zip(PAIRS, got):
        ctx_ids, cont_ids = lm._encode_pair(ctx, cont)
        ids = torch.tensor([ctx_ids + cont_ids])
        with torch.no_grad():
            logp = torch.log_softmax(lm.prompted(ids).logits[0].float(), -1)
        ref = sum(logp[len(ctx_ids) - 1 + i, t].item() for i, t in enumerate(cont_ids))
        assert logprob == pytest.approx(ref, abs=1e-4)


def test_prompt_changes_scores():
    a = _lm(True).loglikelihood([Instance("loglikelihood", {}, PAIRS[0], 0)])[0][0]
    b = _lm(False).loglikelihood([Instance("loglikelihood", {}, PAIRS[0], 0)])[0][0]
    assert a != pytest.approx(b)


@pytest.mark.parametrize("prompt", [True, False])
@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_generate_until_equals_greedy_reference(prompt, arch):
    lm = _lm(prompt, arch)
    tok = lm.tokenizer
    contexts = ["a b c question", "d e f g h i question : it"]
    reqs = [Instance("generate_until", {}, (c, {"until": ["zzz"], "max_gen_toks": 5, "do_sample": False}), i)
            for i, c in enumerate(contexts)]
    got = lm.generate_until(reqs)
    for ctx, text in zip(contexts, got):
        ids = torch.tensor([lm.tok_encode(ctx)])
        out = []
        with torch.no_grad():
            if arch == "t5":
                dec = torch.zeros(1, 1, dtype=torch.long)
                for _ in range(5):
                    nxt = lm.prompted(ids, torch.ones_like(ids), decoder_input_ids=dec).logits[0, -1].argmax().item()
                    dec = torch.cat([dec, torch.tensor([[nxt]])], 1)
                    out.append(nxt)
            else:
                seq = ids
                for _ in range(5):
                    nxt = lm.prompted(seq).logits[0, -1].argmax().item()
                    seq = torch.cat([seq, torch.tensor([[nxt]])], 1)
                    out.append(nxt)
        if tok.eos_token_id in out:
            out = out[: out.index(tok.eos_token_id)]
        assert text == tok.decode(out, skip_special_tokens=True)
