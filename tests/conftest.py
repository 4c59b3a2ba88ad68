"""Tiny random models (Llama, GPT-2, T5) and a tiny True/False task, all built here: no network, ever."""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
import yaml
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
torch.set_num_threads(2)

LETTERS = list("abcdefghij")
WORDS = ["<pad>", "<s>", "</s>", "<unk>", *LETTERS, "has", "question", ":", "?", "answer", "True", "False", "is", "it"]


def make_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, decoders
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(WORDS)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.decoder = decoders.WordPiece(prefix="##")  # joins word tokens with spaces
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>")


def make_model(arch: str):
    from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, T5Config,
                              T5ForConditionalGeneration)

    torch.manual_seed(0)
    v = len(WORDS)
    if arch == "llama":
        return LlamaForCausalLM(LlamaConfig(vocab_size=v, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                            pad_token_id=0, bos_token_id=1, eos_token_id=2))
    if arch == "gpt2":
        return GPT2LMHeadModel(GPT2Config(vocab_size=v, n_embd=32, n_layer=2, n_head=4, n_positions=256, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                          pad_token_id=0, bos_token_id=1, eos_token_id=2))
    if arch == "t5":
        return T5ForConditionalGeneration(T5Config(vocab_size=v, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                                   num_heads=4, pad_token_id=0, eos_token_id=2, dropout_rate=0.0,
                                                   decoder_start_token_id=0))
    raise ValueError(arch)


def save_tiny(directory: Path, arch: str) -> Path:
    model, tok = make_model(arch), make_tokenizer()
    if arch == "t5":
        from tokenizers import processors

        tok._tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def make_records(n: int, seed: int = 0) -> list[dict]:
    """RTE-shaped: 'a c f question: it has c ? answer:' → True/False."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        premise = rng.sample(LETTERS, 3)
        q = rng.choice(premise) if rng.random() < 0.5 else rng.choice([x for x in LETTERS if x not in premise])
        out.append({"premise": " ".join(premise), "hypothesis": f"it has {q}", "label": str(q in premise)})
    return out


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


TEMPLATE = "{premise} question : {hypothesis} ? answer :"


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {arch: save_tiny(root / arch, arch) for arch in ("llama", "gpt2", "t5")}


@pytest.fixture(scope="session")
def task_files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    return {
        "train": write_jsonl(root / "train.jsonl", make_records(64, 0)),
        "validation": write_jsonl(root / "validation.jsonl", make_records(16, 1)),
    }


def run_config(model_dir: Path, files: dict, out: Path, **over) -> dict:
    """A run config for a 4+4-step run on the tiny task; `over` replaces whole top-level sections."""
    cfg = {
        "model": {"name": str(model_dir)},
        "data": {"train": str(files["train"]), "validation": str(files["validation"]), "template": TEMPLATE,
                 "completion": "{label}", "max_length": 64},
        "method": "promot",
        "prompt": {"length": 4},
        "stage1": {"steps": 4, "lr": 0.3, "batch_size": 8, "eval_every": 2},
        "stage2": {"steps": 4, "lr": 1e-3, "batch_size": 8, "eval_every": 2},
        "eval": {"max_new_tokens": 2},
        "output_dir": str(out),
        "bf16": False,  # exact fp32 on every machine (`auto` would pick bf16 where the CPU has it)
    }
    cfg.update(over)
    return cfg


TASK = {
    "output_type": "generate_until",
    "dataset_path": "json",
    "training_split": "train",
    "test_split": "test",
    "fewshot_split": "train",
    "doc_to_text": "{{question}} question :",
    "doc_to_target": "{{answer}}",
    "target_delimiter": " ",
    "fewshot_delimiter": " ",
    "generation_kwargs": {"until": ["?"], "max_gen_toks": 3, "do_sample": False},
    "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True,
                     "ignore_case": True, "ignore_punctuation": True}],
    "metadata": {"version": 1.0},
}


@pytest.fixture(scope="session")
def tiny_task(tmp_path_factory):
    """`tiny_first`: 'c a f question :' → 'c' (first letter), in the tiny tokenizer's vocabulary."""
    root = tmp_path_factory.mktemp("tasks")
    rng = random.Random(0)
    rows = [{"question": " ".join(q), "answer": q[0]} for q in (rng.sample(LETTERS, 3) for _ in range(40))]
    write_jsonl(root / "train.jsonl", rows[:16])
    write_jsonl(root / "test.jsonl", rows[16:])
    task = {**TASK, "task": "tiny_first",
            "dataset_kwargs": {"data_files": {"train": str(root / "train.jsonl"), "test": str(root / "test.jsonl")}}}
    (root / "tiny_first.yaml").write_text(yaml.safe_dump(task))
    return root
