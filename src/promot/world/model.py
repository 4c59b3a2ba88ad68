"""The world model: a standard `LlamaForCausalLM` (no custom model code), ~0.9M parameters.

Everything promot does to a real model it does to this one through the same code paths; only the size differs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class WorldModelSize:
    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    max_position_embeddings: int = 256


def build_model(vocab_size: int, size: WorldModelSize = WorldModelSize(), seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from promot.world.tokenizer import SPECIALS

    config = LlamaConfig(vocab_size=vocab_size, num_key_value_heads=size.num_attention_heads,
                         tie_word_embeddings=True, pad_token_id=SPECIALS.index("<pad>"),
                         bos_token_id=SPECIALS.index("<s>"), eos_token_id=SPECIALS.index("</s>"), **asdict(size))
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)
