"""The run directory — the contract every other command reads:

    run/config.yaml          resolved config
    run/metrics.jsonl        one line per Trainer log (stage, step, loss, lr, eval_target_score)
    run/model/               save_pretrained + tokenizer; loads with plain transformers; contains no prompt;
                             README.md: its model card (base model, method, data, selection; eval after `promot eval`)
    run/prompt/              PEFT prompt-tuning adapter (methods with a prompt)
    run/lora/                PEFT LoRA adapter (lora methods; model/ holds the merged weights)
    run/stage{1,2}/          Trainer checkpoints every save_every steps: checkpoint-N/{model,prompt}/ + optimizer,
                             scheduler, RNG and data position + promot_state.json (best-so-far, for --resume)
    run/stage1/selected.safetensors   stage 1's selected prompt + its history: a resumed run skips a finished stage 1
    run/data.sha256          the tokenized data's fingerprint: --resume refuses to continue on changed data
    run/run.json             method, base model + fingerprints, selection per stage; written last = run complete

Everything is written to a temporary name and renamed, so a crash never leaves a complete-looking half file.
"""
from __future__ import annotations

from pathlib import Path

import torch

from promot import rundir
from promot.io import atomic_dir
from promot.prompt import PromptedLM, save_prompt
from promot.prompt.soft_prompt import inner_state, plain_model
from promot.runs import write_model_card  # noqa: F401  (re-export: the card is part of the run directory)


def save_model(directory: Path, model: torch.nn.Module, tokenizer, state_dict: dict | None = None) -> None:
    with atomic_dir(directory) as tmp:
        model.save_pretrained(tmp, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)


def save_checkpoint(folder: Path, lm: PromptedLM, tokenizer, state_dict: dict | None = None) -> None:
    """A resumable checkpoint: model weights (or LoRA adapter) and the prompt, together. `state_dict` is the
    wrapper's gathered full state (FSDP/ZeRO-3 keep only shards in the module)."""
    save_model(folder / rundir.MODEL, lm.model, tokenizer, None if state_dict is None else inner_state(state_dict))
    if lm.prompt is not None:
        prompt = lm.prompt if state_dict is None else state_dict["prompt"]
        source = getattr(plain_model(lm.model).config, "_name_or_path", "") or ""
        save_prompt(folder / rundir.PROMPT, prompt, plain_model(lm.model), source, [])


def model_dir_for_peft(run_dir: Path) -> str:
    """A prompt adapter's `base_model_name_or_path`: the run's own model/, as an absolute path, because PEFT's
    AutoPeftModel loads it relative to the working directory (an alias like `world-tiny` loads nowhere). The prompt
    belongs to these weights (ProMoT tunes the model around it); after moving a run, pass the model yourself."""
    return str((Path(run_dir) / rundir.MODEL).resolve())
