"""Save and load soft prompts in PEFT's prompt-tuning adapter format.

A saved prompt is `adapter_config.json` + `adapter_model.safetensors` holding `prompt_embeddings` [P, H], so
`peft.PeftModel.from_pretrained(base, prompt_dir)` loads it. promot adds, in the safetensors metadata, the
fingerprints of the models the prompt belongs to; PEFT ignores them, promot refuses a mismatch.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from promot.errors import CheckpointError
from promot.io import atomic_dir

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
KEY = "prompt_embeddings"


@dataclass
class SavedPrompt:
    embeddings: torch.Tensor
    """[P, H] float32."""
    fingerprints: list[str] = field(default_factory=list)
    """Fingerprints of models this prompt may attach to; empty for adapters made outside promot."""
    base_model: str | None = None


def save_prompt(
    directory: str | Path,
    embeddings: torch.Tensor,
    model: torch.nn.Module,
    base_model: str,
    fingerprints: list[str],
) -> None:
    """Write a PEFT prompt-tuning adapter atomically."""
    from peft import PromptTuningConfig, TaskType

    cfg = model.config
    seq2seq = bool(cfg.is_encoder_decoder)
    peft_cfg = PromptTuningConfig(
        task_type=TaskType.SEQ_2_SEQ_LM if seq2seq else TaskType.CAUSAL_LM,
        num_virtual_tokens=embeddings.shape[0],
        token_dim=embeddings.shape[1],
        # 1, not PEFT's seq2seq default of 2: the prompt lives on the encoder side only; a second copy would be dead.
        num_transformer_submodules=1,
        num_attention_heads=getattr(cfg, "num_attention_heads", None) or getattr(cfg, "num_heads", None),
        num_layers=getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "num_layers", None),
        base_model_name_or_path=base_model,
        inference_mode=True,
    )
    meta = {"format": "pt", "promot_fingerprints": json.dumps(fingerprints)}
    with atomic_dir(directory) as tmp:
        peft_cfg.save_pretrained(tmp)
        save_file({KEY: embeddings.detach().float().cpu().contiguous()}, tmp / WEIGHTS_NAME, metadata=meta)


def load_prompt(directory: str | Path) -> SavedPrompt:
    """Read a PEFT prompt-tuning adapter (promot's or anyone's); only the first P rows are the prompt."""
    directory = Path(directory)
    cfg_path, weights = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    if not cfg_path.is_file() or not weights.is_file():
        raise CheckpointError(f"{directory}: not a PEFT adapter (needs {CONFIG_NAME} and {WEIGHTS_NAME})")
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{cfg_path}: invalid JSON ({e.msg}, line {e.lineno})") from None
    if cfg.get("peft_type") != "PROMPT_TUNING":
        raise CheckpointError(f"{cfg_path}: peft_type is {cfg.get('peft_type')!r}, not a prompt-tuning adapter")
    try:
        with safe_open(weights, framework="pt") as f:
            if KEY not in f.keys():
                raise CheckpointError(f"{weights}: no '{KEY}' tensor")
            tensor = f.get_tensor(KEY)
            meta = f.metadata() or {}
    except SafetensorError as e:
        raise CheckpointError(f"{weights}: unreadable safetensors ({e})") from None
    n = int(cfg.get("num_virtual_tokens") or tensor.shape[0])
    return SavedPrompt(
        embeddings=tensor[:n].float(),
        fingerprints=json.loads(meta.get("promot_fingerprints", "[]")),
        base_model=cfg.get("base_model_name_or_path"),
    )


def check_compatible(prompt: SavedPrompt, model: torch.nn.Module, model_fingerprint: str | None, where: str) -> None:
    """Refuse a prompt whose width differs from the model's embeddings, or that was made for other weights."""
    hidden = model.get_input_embeddings().weight.shape[1]
    if prompt.embeddings.shape[1] != hidden:
        raise CheckpointError(
            f"{where}: prompt hidden size {prompt.embeddings.shape[1]} does not match the model's {hidden}"
        )
    if model_fingerprint and prompt.fingerprints and model_fingerprint not in prompt.fingerprints:
        raise CheckpointError(
            f"{where}: prompt was trained for another model (fingerprint {model_fingerprint[:12]} not in "
            f"{', '.join(f[:12] for f in prompt.fingerprints)}); attach it to the model it was made for"
        )
