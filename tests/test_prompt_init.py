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


def test_vocab_init_draws_ordinary_tokens_only():
    """Not gemma's `<unusedN>`, byte tokens `<0x..>`, `[unused]`/`[PAD]`-style markup or added tokens: only words."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from promot.prompt.init import ordinary_ids

    words = ["<pad>", "<eos>", "<unk>", "<unused0>", "<unused1>", "<0x0A>", "<0xFF>", "[unused3]", "<start_of_image>",
             "the", "cat", "sat", "<", "[", "a<b"]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    tok.add_tokens(["<added>", "added_word"])
    assert tok.convert_ids_to_tokens(ordinary_ids(tok)) == ["the", "cat", "sat", "<", "[", "a<b"]
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2))
    p = init_prompt("vocab", 200, model, tok, seed=0)
    table = model.get_input_embeddings().weight.detach()
    used = {(table == row).all(-1).nonzero().flatten().item() for row in p}
    assert used == set(ordinary_ids(tok))
