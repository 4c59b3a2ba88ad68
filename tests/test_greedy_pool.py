"""GreedyPool: the tokens greedy `generate` gives, row for row, while rows share a prefix, stop, leave and join; and
promot's lm-eval model generates what lm-eval's own HFLM does on the world suite, item for item."""
from __future__ import annotations

import pytest
import torch
from conftest import make_model, make_tokenizer

from promot.prompt import PromptedLM
from promot.prompt.greedy_pool import GreedyPool, Request, supports
from promot.prompt.pool_batch import pack_tries, tree_mask


def _reference(lm: PromptedLM, ids: list[int], req: Request, tok) -> list[int]:
    """One row alone through the model, greedy, stopping where the pool must."""
    seq, out = torch.tensor([ids]), []
    with torch.no_grad():
        for _ in range(req.max_new):
            out.append(lm(seq).logits[0, -1].argmax().item())
            seq = torch.cat([seq, torch.tensor([[out[-1]]])], 1)
            if out[-1] == 2 or any(s in tok.decode(out, skip_special_tokens=False) for s in req.stops):
                break
    return out


def _requests(tok) -> list[Request]:
    texts = ["a b c question", "a b c question : it has a ? answer", "a b d", "a b c e f g h i j question : it",
             "a b", "a b c question : it has", "a b f g"]
    stops = [(), ("c",), ("question", "e"), (), ("b",), (), ("a",)]
    return [Request(tok(t)["input_ids"], max_new=3 + i % 4, stops=s) for i, (t, s) in enumerate(zip(texts, stops))]


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
@pytest.mark.parametrize("prompt", [False, True])
@pytest.mark.parametrize("batch_size", [1, 2, 3, 16])
def test_pool_matches_each_row_alone(prompt, batch_size, attention):
    """Shared prefix ('a b'), stop strings, EOS, per-row budgets, refills at every batch size, either attention that
    takes the pool's masks: each row's tokens are those of the row generated alone."""
    tok = make_tokenizer()
    model = make_model("llama").eval()
    model.set_attn_implementation(attention)
    lm = PromptedLM(model, torch.randn(4, 32) * 2 if prompt else None).eval()
    reqs = _requests(tok)
    got = GreedyPool(lm, tok, reqs, batch_size).run()
    for req, new in zip(reqs, got):
        assert new == _reference(lm, list(req.ids), req, tok)


def test_pool_shares_the_prefix_and_refills():
    """The prefix every row starts with is encoded once; a batch of 2 over 7 requests refills as rows stop."""
    tok = make_tokenizer()
    lm = PromptedLM(make_model("llama").eval(), torch.randn(4, 32)).eval()
    pool = GreedyPool(lm, tok, _requests(tok), 2)
    # the prompt's 4 slots and the common text 'a b', less the last token of the shortest row (its logits need it)
    assert pool.shared == 4 + len(tok("a b")["input_ids"]) - 1
    seen = []
    forward = lm.model.forward

    def spy(*args, **kwargs):
        x = kwargs.get("input_ids", kwargs.get("inputs_embeds"))
        seen.append(tuple(x.shape[:2]))
        return forward(*args, **kwargs)

    lm.model.forward = spy
    pool.run()
    assert seen[0] == (1, pool.shared)  # the prefix, once
    assert all(rows <= 2 for rows, _ in seen[1:])


def test_pack_encodes_what_texts_share_once_and_splits_where_attention_would_cost_more():
    texts = [[11, 12], [5, 6, 7, 9], [5, 6, 10], [5, 6, 7, 8]]  # any order: the tries are built in token order
    (pack,) = pack_tries(texts, before=0, scale=1e9)  # attention free: everything in one trie
    assert len(pack.tokens) == 8  # 5 6 {10, 7 {8, 9}} and 11 12
    seen, depths = tree_mask([pack], 10)  # two slots of padding
    for row, node in zip(pack.rows, pack.ends):  # a row's end sees exactly its own text's nodes
        assert [pack.tokens[k] for k in seen[0, node].nonzero().flatten().tolist()] == texts[row]
        assert depths[0, node] == len(texts[row]) - 1
    assert seen[0, 8:, 8:].equal(torch.eye(2, dtype=torch.bool)) and not seen[0, 8:, :8].any()  # padding: itself
    unrelated = [[20 + i] * 50 + [i] for i in range(3)]
    assert len(pack_tries(unrelated, before=0, scale=10.0)) == 3  # attention over 150 keys costs more than 3 rows of 51
    stem = [[20] * 50 + [i] for i in range(3)]
    assert [len(p.tokens) for p in pack_tries(stem, before=0, scale=10.0)] == [53]  # a shared stem: once, cost or not


def _spied(lm) -> list[tuple[int, int, torch.Tensor]]:
    """(rows, positions, attention mask) of every forward the model runs from now on."""
    seen, forward = [], lm.model.forward

    def spy(*args, **kwargs):
        x = kwargs.get("input_ids", kwargs.get("inputs_embeds"))
        seen.append((x.shape[0], x.shape[1], kwargs["attention_mask"].clone()))
        return forward(*args, **kwargs)

    lm.model.forward = spy
    return seen


def test_rows_that_share_an_exemplar_prefill_it_once():
    """Beyond the prefix all rows share ('<s> a'), three rows share nine more tokens: the prefill carries those once,
    and every row still gets the tokens it gets alone."""
    tok = make_tokenizer()
    lm = PromptedLM(make_model("llama").eval(), None).eval()
    texts = [f"a b c e f g h i j question : {w}" for w in ("it", "has", "answer")] + ["a d"]
    reqs = [Request(tok(t)["input_ids"], max_new=3) for t in texts]
    pool = GreedyPool(lm, tok, reqs, 4)
    seen = _spied(lm)
    got = pool.run()
    prefill = sum(rows * length for rows, length, _ in seen[1:] if length > 1)
    assert pool.shared == 2 and prefill == 10 + 3 + 1  # 'b ... :' once, then each row's last word; 'd'
    for req, new in zip(reqs, got):
        assert new == _reference(lm, list(req.ids), req, tok)


def test_decode_steps_run_full_batches_over_caches_without_dead_columns():
    """Rows prefilled ahead fill every freed slot before the next step, and the slots no row attends to any more
    (left behind by rows that joined first and left) are cut from the cache."""
    tok = make_tokenizer()
    lm = PromptedLM(make_model("llama").eval(), None).eval()
    reqs = [Request(tok(t)["input_ids"], max_new=1 + i % 5) for i, t in enumerate(
            ["a b c", "a d e f g h", "a i", "a j k l m n o p", "a b", "a c d", "a e f g h i j k", "a l m"] * 2)]
    seen = _spied(lm)
    got = GreedyPool(lm, tok, reqs, 3, eos=set()).run()
    assert [len(new) for new in got] == [r.max_new for r in reqs]  # no EOS, no stop: every row runs its budget
    prefills = [i for i, (_, _, mask) in enumerate(seen) if mask.dim() == 4]  # packed tries: a 4D mask
    decodes = [(i, rows, mask) for i, (rows, length, mask) in enumerate(seen[1:], 1) if mask.dim() == 2]
    assert all(rows == 3 for i, rows, _ in decodes if i < prefills[-1])
    assert all(mask[:, 0].any() for _, _, mask in decodes)


def test_supports_only_plain_caches_and_single_prompts():
    from transformers import MistralConfig, MistralForCausalLM

    llama = make_model("llama")
    assert supports(PromptedLM(llama, None))
    assert not supports(PromptedLM(llama, torch.randn(3, 4, 32)))  # a prompt bank: each row its own prompt
    assert not supports(PromptedLM(make_model("t5"), None))
    sliding = MistralForCausalLM(MistralConfig(vocab_size=40, hidden_size=32, intermediate_size=64,
                                               num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                               sliding_window=8))
    assert not supports(PromptedLM(sliding, None))
    llama.generation_config.repetition_penalty = 1.3
    assert not supports(PromptedLM(llama, None))

    class OwnForward(type(make_model("llama"))):  # a model with its own forward, without logits_to_keep
        def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None, **kw):
            return super().forward(input_ids, attention_mask, position_ids, past_key_values, **kw)

    own = OwnForward(make_model("llama").config)
    assert not supports(PromptedLM(own, None))


@pytest.mark.parametrize("prompt", [False, True])
def test_world_generations_equal_hflm_item_for_item(prompt):
    """The world suite, 4-shot, greedy: every generation and score equal to lm-eval's HFLM (no prompt) or to HFLM's
    own batches of `generate` on the same prompted model (prompt on), with refills (batch 8 < items)."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from promot.evaluate.lm_eval_model import PromptedHFLM
    from promot.evaluate.runner import task_manager
    from promot.models import load_model
    from promot.prompt import init_prompt
    from promot.prompt.soft_prompt import prompt_bos_id

    loaded = load_model("world-tiny")
    model, tok = loaded.model.eval(), loaded.tokenizer
    tasks = ["world_copy", "world_reverse", "world_parity", "world_classify", "world_length"]
    manager = task_manager(None, tasks)
    kw = {"tokenizer": tok, "batch_size": 8, "device": "cpu"}
    if prompt:
        lm = PromptedLM(model, init_prompt("vocab", 6, model, tok), bos_id=prompt_bos_id(tok))
        reference, pooled = PromptedHFLM(lm, greedy_pool=False, **kw), PromptedHFLM(lm, **kw)
    else:
        reference, pooled = HFLM(pretrained=model, **kw), PromptedHFLM(PromptedLM(model, None), **kw)

    def run(hflm):
        res = simple_evaluate(model=hflm, tasks=tasks, num_fewshot=4, limit=12, task_manager=manager,
                              log_samples=True, bootstrap_iters=0, random_seed=0, numpy_random_seed=0,
                              torch_random_seed=0, fewshot_random_seed=0, verbosity="ERROR")
        gens = {(t, s["doc_id"]): s["resps"][0][0] for t, ss in res["samples"].items() for s in ss}
        return gens, {t: r["exact_match,none"] for t, r in res["results"].items()}

    want, got = run(reference), run(pooled)
    assert len(want[0]) == 60 and got == want
    assert len(set(want[0].values())) > 5  # not one answer for everything: the comparison can fail


@pytest.mark.parametrize("prompt", [False, True])
def test_generate_texts_through_the_pool_equals_generate(prompt):
    """Selection, the guard and the probes (`generate_texts`) get the same texts from the pool as from `generate`."""
    from promot.data import Example, Tokenizing
    from promot.prompt.generate import generate_texts

    tok = make_tokenizer()
    lm = PromptedLM(make_model("llama").eval(), torch.randn(4, 32) * 2 if prompt else None).eval()
    tokenizing = Tokenizing(tok, seq2seq=False, max_length=32)
    examples = [Example(input=t, target="True", where=f"test:{i}") for i, t in enumerate(
                ["a b c question", "a b d e f question : it has a ?", "a", "g h i j k l m n", "a b c"])]
    pooled = generate_texts(lm, tokenizing, examples, max_new_tokens=4, batch_size=2)
    assert pooled == generate_texts(lm, tokenizing, examples, max_new_tokens=4, batch_size=2, pool=False)
    assert len(set(pooled)) > 1
