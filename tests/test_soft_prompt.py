"""PromptedLM: same logits as PEFT, plain model when detached, loss on targets only, cached generation = reference."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import make_model
from peft import PeftModel

from promot.prompt import PromptedLM, save_prompt

ARCHS = ["llama", "gpt2", "t5"]


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(4, 20, (3, 9), generator=g), torch.randint(4, 20, (3, 4), generator=g)


@pytest.mark.parametrize("arch", ARCHS)
def test_logits_equal_peft_prompt_tuning(arch, tmp_path):
    model = make_model(arch).eval()
    prompt = torch.randn(5, 32)
    ours = PromptedLM(model, prompt).eval()
    save_prompt(tmp_path, prompt, model, "tiny", [])
    peft = PeftModel.from_pretrained(model, tmp_path).eval()
    ids, labels = _inputs()
    mask = torch.ones_like(ids)
    with torch.no_grad():
        if ours.is_seq2seq:
            a = ours(ids, mask, labels=labels).logits
            b = peft(input_ids=ids, attention_mask=mask, labels=labels).logits
        else:
            a = ours(ids, mask).logits
            b = peft(input_ids=ids, attention_mask=mask).logits[:, 5:]  # PEFT returns the prompt positions too
    assert a.shape[:2] == (labels if ours.is_seq2seq else ids).shape
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("arch", ARCHS)
def test_without_prompt_is_the_plain_model(arch):
    model = make_model(arch).eval()
    ids, labels = _inputs()
    kw = {"labels": labels} if arch == "t5" else {}
    with torch.no_grad():
        plain = model(input_ids=ids, attention_mask=torch.ones_like(ids), **kw).logits
        wrapped = PromptedLM(model, None)(ids, torch.ones_like(ids), **kw).logits
    assert torch.equal(plain, wrapped)


def test_causal_loss_covers_target_tokens_only():
    model = make_model("llama").eval()
    lm = PromptedLM(model, torch.randn(4, 32)).eval()
    ids, _ = _inputs()
    labels = ids.clone()
    labels[:, :6] = -100  # the input part
    with torch.no_grad():
        out = lm(ids, torch.ones_like(ids), labels=labels)
    expected = F.cross_entropy(out.logits[:, :-1].reshape(-1, out.logits.shape[-1]), labels[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, expected)
    # Changing input tokens' labels (masked) must not change the loss; changing a target label must.
    labels2 = labels.clone()
    labels2[:, -1] = (labels2[:, -1] + 1) % 20
    assert not torch.allclose(lm(ids, torch.ones_like(ids), labels=labels2).loss, out.loss)


def test_right_padding_does_not_change_real_positions():
    model = make_model("llama").eval()
    lm = PromptedLM(model, torch.randn(4, 32)).eval()
    ids, _ = _inputs()
    padded = torch.cat([ids, torch.zeros(3, 3, dtype=torch.long)], 1)
    mask = torch.cat([torch.ones_like(ids), torch.zeros(3, 3, dtype=torch.long)], 1)
    with torch.no_grad():
        torch.testing.assert_close(lm(padded, mask).logits[:, :9], lm(ids, torch.ones_like(ids)).logits)


def _greedy_reference(lm: PromptedLM, ids: torch.Tensor, n: int) -> torch.Tensor:
    """No cache: a full forward pass per new token."""
    if lm.is_seq2seq:
        dec = torch.zeros(1, 1, dtype=torch.long)  # decoder_start_token_id
        for _ in range(n):
            logits = lm(ids, torch.ones_like(ids), decoder_input_ids=dec).logits
            dec = torch.cat([dec, logits[:, -1:].argmax(-1)], 1)
        return dec[:, 1:]
    seq = ids
    for _ in range(n):
        logits = lm(seq, torch.ones_like(seq)).logits
        seq = torch.cat([seq, logits[:, -1:].argmax(-1)], 1)
    return seq[:, ids.shape[1]:]


@pytest.mark.parametrize("arch", ARCHS)
def test_cached_batched_generation_equals_no_cache_reference(arch):
    model = make_model(arch).eval()
    lm = PromptedLM(model, torch.randn(5, 32) * 3).eval()
    a = torch.randint(4, 20, (1, 8), generator=torch.Generator().manual_seed(1))
    b = torch.randint(4, 20, (1, 5), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref_a, ref_b = _greedy_reference(lm, a, 6), _greedy_reference(lm, b, 6)
    side_left = arch != "t5"  # decoder-only generation needs left padding; T5's encoder takes right padding
    ids = torch.zeros(2, 8, dtype=torch.long)
    mask = torch.zeros_like(ids)
    ids[0], mask[0] = a[0], 1
    if side_left:
        ids[1, 3:], mask[1, 3:] = b[0], 1
    else:
        ids[1, :5], mask[1, :5] = b[0], 1
    out = lm.generate(ids, mask, max_new_tokens=6, do_sample=False, eos_token_id=None, pad_token_id=0)
    assert torch.equal(out[0], ref_a[0]) and torch.equal(out[1], ref_b[0])
    # the generator really saw the prompt: without it, the scores of the continuation differ
    kw = {"max_new_tokens": 2, "do_sample": False, "output_scores": True, "return_dict_in_generate": True}
    with_p = lm.model.generate(inputs_embeds=lm.embed(a, torch.ones_like(a))[0], **kw).scores[0]
    without = model.generate(input_ids=a, **kw).scores[0]
    assert not torch.allclose(with_p, without)


def test_prompt_parameter_trainability():
    model = make_model("llama")
    assert PromptedLM(model, torch.randn(3, 32), train_prompt=True).prompt.requires_grad
    assert not PromptedLM(model, torch.randn(3, 32), train_prompt=False).prompt.requires_grad


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_training_loss_on_target_positions_only_equals_full_logits_loss(arch):
    """Training projects only target positions through the LM head; loss and gradients must not change."""
    model = make_model(arch)
    lm = PromptedLM(model, torch.randn(4, 32), train_prompt=True)
    ids, _ = _inputs()
    labels = ids.clone()
    labels[:, :5] = -100
    labels[0, 7] = -100  # ragged targets
    lm.train()
    fast = lm(ids, torch.ones_like(ids), labels=labels)
    assert fast.logits.shape[0] == int((labels[:, 1:] != -100).sum())
    fast.loss.backward()
    g_fast = lm.prompt.grad.clone()
    lm.prompt.grad = None
    lm.eval()  # eval mode: full logits, same loss
    full = lm(ids, torch.ones_like(ids), labels=labels)
    full.loss.backward()
    torch.testing.assert_close(fast.loss, full.loss)
    torch.testing.assert_close(g_fast, lm.prompt.grad)


@pytest.mark.parametrize("arch", ["llama", "gpt2", "t5"])
def test_a_mixed_batch_gives_each_example_its_own_prompt(arch):
    """Multi-task ProMoT: a prompt bank [T, P, H]; each example's logits equal a single-prompt pass with its task's."""
    model = make_model(arch).eval()
    bank = torch.randn(3, 4, 32, generator=torch.Generator().manual_seed(0)) * 2
    ids = torch.randint(4, 20, (4, 6), generator=torch.Generator().manual_seed(3))
    labels = ids.clone()
    task_ids = torch.tensor([2, 0, 1, 2])
    mixed = PromptedLM(model, bank).eval()
    with torch.no_grad():
        out = mixed(ids, labels=labels, task_ids=task_ids)
        for i, t in enumerate(task_ids.tolist()):
            single = PromptedLM(model, bank[t]).eval()(ids[i : i + 1], labels=labels[i : i + 1])
            assert torch.allclose(out.logits[i], single.logits[0], atol=1e-5), (arch, i)
        gen = mixed.generate(ids[:2], task_ids=task_ids[:2], max_new_tokens=3, do_sample=False, pad_token_id=0)
        alone = PromptedLM(model, bank[2]).eval().generate(ids[:1], max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert torch.equal(gen[0], alone[0])
    with pytest.raises(ValueError, match="task_ids"):
        mixed(ids)


@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_a_bank_of_one_trains_and_generates_bit_for_bit_as_its_prompt(arch):
    """A single-task run's stage 2 attaches a bank [1, P, H]: the same loss, prompt gradient and generations as the
    prompt [P, H] alone, to the bit, with no task ids; the greedy pool serves it."""
    from promot.prompt.greedy_pool import supports

    prompt = torch.randn(4, 32, generator=torch.Generator().manual_seed(0))
    ids, labels = _inputs()
    if arch == "llama":
        labels = ids.clone()
    outs = []
    for p in (prompt, prompt.unsqueeze(0)):
        lm = PromptedLM(make_model(arch), p, train_prompt=True).train()
        loss = lm(ids, labels=labels).loss
        loss.backward()
        with torch.no_grad():
            gen = lm.eval().generate(ids[:2], max_new_tokens=3, do_sample=False, pad_token_id=0)
        outs.append((loss.detach(), lm.prompt.grad.reshape(4, 32), gen))
    assert all(torch.equal(a, b) for a, b in zip(*outs))
    assert supports(PromptedLM(make_model("llama"), prompt.unsqueeze(0)))
    assert not supports(PromptedLM(make_model("llama"), torch.stack([prompt, prompt])))


def test_collator_passes_task_ids():
    from promot.data import Collator

    batch = Collator(0)([{"input_ids": [1, 2], "labels": [-100, 2], "task_id": 1},
                         {"input_ids": [1], "labels": [1], "task_id": 0}])
    assert batch["task_ids"].tolist() == [1, 0]
    assert "task_ids" not in Collator(0)([{"input_ids": [1], "labels": [1]}])


def _sliding_window_model():
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    return MistralForCausalLM(MistralConfig(vocab_size=24, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                            num_attention_heads=4, num_key_value_heads=2, sliding_window=4,
                                            max_position_embeddings=64, pad_token_id=0)).eval()


def test_batched_generation_with_padding_equals_unbatched_with_a_sliding_window():
    """Rows are pad | prompt | text: padding between prompt and text would take sliding-window slots from the
    prompt, so a padded row would not continue as it does alone."""
    lm = PromptedLM(_sliding_window_model(), torch.randn(5, 32) * 3).eval()
    a = torch.randint(4, 20, (1, 8), generator=torch.Generator().manual_seed(1))
    b = torch.randint(4, 20, (1, 3), generator=torch.Generator().manual_seed(2))
    kw = {"max_new_tokens": 4, "do_sample": False, "eos_token_id": None, "pad_token_id": 0, "output_scores": True,
          "return_dict_in_generate": True}
    alone = [lm.generate(x, torch.ones_like(x), **kw) for x in (a, b)]
    ids, mask = torch.zeros(2, 8, dtype=torch.long), torch.zeros(2, 8, dtype=torch.long)
    ids[0], mask[0] = a[0], 1
    ids[1, 5:], mask[1, 5:] = b[0], 1
    batched = lm.generate(ids, mask, **kw)
    for row, single in enumerate(alone):
        assert torch.equal(batched.sequences[row], single.sequences[0])
        for step, scores in enumerate(single.scores):
            torch.testing.assert_close(batched.scores[step][row], scores[0], atol=1e-4, rtol=1e-4)


def _bos_rows(lengths=(9, 6), seed: int = 4) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.cat([torch.tensor([1]), torch.randint(4, 20, (n - 1,), generator=g)]) for n in lengths]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_the_prompt_goes_right_after_a_leading_bos_in_every_path(arch):
    """Rows starting with BOS see BOS | prompt | text (where a server puts a text prefix after the BOS its tokenizer
    adds): the logits are the model's on that embedding sequence, with either padding side, in the training loss,
    in cached generation; a replay row (prompt masked) stays the bare model; `bos_id=None` keeps PEFT's order."""
    model = make_model(arch).eval()
    prompt = torch.randn(4, 32, generator=torch.Generator().manual_seed(5)) * 2
    lm = PromptedLM(model, prompt, bos_id=1).eval()
    emb = model.get_input_embeddings()
    a, b = _bos_rows()
    with torch.no_grad():
        ref = model(inputs_embeds=torch.cat([emb(a[:1]), prompt, emb(a[1:])])[None]).logits[0]
        got = lm(a[None]).logits[0]
        torch.testing.assert_close(got, ref[4:], rtol=0, atol=1e-5)  # the last prompt slot predicts after BOS
        first = model(inputs_embeds=torch.cat([prompt, emb(a)])[None]).logits[0, 4:]
        torch.testing.assert_close(PromptedLM(model, prompt).eval()(a[None]).logits[0], first,
                                   rtol=0, atol=1e-5)
        assert not torch.allclose(got, first, atol=1e-3)
        for side in ("right", "left"):  # padding either side: each row's real logits as alone
            ids, mask = torch.zeros(2, 9, dtype=torch.long), torch.zeros(2, 9, dtype=torch.long)
            ids[0], mask[0] = a, 1
            sl = slice(0, 6) if side == "right" else slice(3, 9)
            ids[1, sl], mask[1, sl] = b, 1
            out = lm(ids, mask).logits
            torch.testing.assert_close(out[0], got, rtol=0, atol=1e-5)
            torch.testing.assert_close(out[1, sl], lm(b[None]).logits[0], rtol=0, atol=1e-5)
        replay = lm(ids, mask, prompt_mask=torch.tensor([True, False])).logits[1, sl]
        torch.testing.assert_close(replay, model(b[None]).logits[0], rtol=0, atol=1e-5)
        out = lm.generate(ids, mask, max_new_tokens=5, do_sample=False, eos_token_id=None, pad_token_id=0)
        for row, x in enumerate((a, b)):
            assert torch.equal(out[row], _greedy_reference(lm, x[None], 5)[0])
    labels = ids.clone()
    labels[mask == 0] = -100
    labels[:, :4] = -100
    lm.train()
    fast = lm(ids, mask, labels=labels).loss
    lm.eval()
    torch.testing.assert_close(fast, lm(ids, mask, labels=labels).loss)


def test_prompt_order_spells_what_embed_builds():
    from promot.prompt.soft_prompt import prompt_order

    assert prompt_order([90, 91], [1, 5, 6], 1) == [1, 90, 91, 5, 6]
    assert prompt_order([90, 91], [5, 6], 1) == [90, 91, 5, 6]
    assert prompt_order([90, 91], [1, 5], None) == [90, 91, 1, 5]


def test_the_prompt_follows_only_a_bos_the_tokenizer_adds_itself():
    """world-tiny / Gemma add BOS to plain text: the prompt follows it. A tokenizer that names a BOS but adds none
    (SmolLM2: `<|im_start|>`, written by its chat template) keeps the prompt first."""
    from conftest import make_tokenizer
    from tokenizers import processors

    from promot.prompt import prompt_bos_id

    tok = make_tokenizer()
    assert tok("a")["input_ids"][0] == tok.bos_token_id == 1 and prompt_bos_id(tok) == 1
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(single="$A", special_tokens=[])
    assert tok("a")["input_ids"][0] != tok.bos_token_id and prompt_bos_id(tok) is None
