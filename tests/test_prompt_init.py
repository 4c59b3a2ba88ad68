"""Prompt initialisations live in the model's input-embedding space and are seeded."""
from __future__ import annotations

import torch
from conftest import make_model, make_tokenizer

from promot.prompt import init_prompt


def test_uniform_is_the_papers_half_open_interval():
    p = init_prompt("uniform", 50, make_model("llama"), make_tokenizer(), seed=1)
    assert p.shape == (50, 32) and p.min() >= 0 and p.max() < 0.5 and p.std() > 0.1


def test_vocab_rows_are_real_token_embeddings_and_seeded():
    model, tok = make_model("llama"), make_tokenizer()
    p = init_prompt("vocab", 6, model, tok, seed=3)
    table = model.get_input_embeddings().weight.detach()
    special = set(tok.all_special_ids)
    for row in p:
        idx = (table == row).all(-1).nonzero().flatten().tolist()
        assert len(idx) == 1 and idx[0] not in special
    assert torch.equal(p, init_prompt("vocab", 6, model, tok, seed=3))
    assert not torch.equal(p, init_prompt("vocab", 6, model, tok, seed=4))


def test_text_repeats_the_text_embeddings():
    model, tok = make_model("llama"), make_tokenizer()
    p = init_prompt("text", 5, model, tok, text="True False")
    ids = tok.convert_tokens_to_ids(["True", "False", "True", "False", "True"])
    assert torch.equal(p, model.get_input_embeddings()(torch.tensor(ids)).detach())


def test_normal_matches_embedding_scale():
    model = make_model("llama")
    p = init_prompt("normal", 200, model, make_tokenizer())
    assert abs(p.std().item() - model.get_input_embeddings().weight.std().item()) < 0.01
