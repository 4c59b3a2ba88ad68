"""Writing a run's artifacts (the layout: `promot.rundir`): models, checkpoints and prompts, each atomically (a
temporary name, renamed), so a crash never leaves a complete-looking half file."""
from __future__ import annotations

from pathlib import Path

import torch

from promot import rundir
from promot.io import atomic_dir
from promot.prompt import PromptedLM, SavedPrompt, save_prompt
from promot.prompt.soft_prompt import inner_state, plain_model


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


def save_carried(run_dir: Path, prompts: dict[str, SavedPrompt], model, model_fp: str) -> None:
    """Earlier runs' prompts (sequential training) re-saved under prompts/<name>/, with the new model's
    fingerprint added: each earlier task keeps its prompt on the final model, which still refuses unrelated ones."""
    for name, saved in prompts.items():
        save_prompt(run_dir / rundir.PROMPTS / name, saved.embeddings, model, model_dir_for_peft(run_dir),
                    sorted({*saved.fingerprints, model_fp}))
