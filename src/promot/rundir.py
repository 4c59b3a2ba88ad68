"""The run directory as one contract: every file and folder name in it, and the readers of its records. No torch.

    RUN/config.yaml          resolved config (written first)
    RUN/config.fingerprint.json  a hash per resolved config key: --resume names the keys edited since the start
    .RUN.lock                beside RUN (survives overwrite): the one-writer lock (promot/lock.py), holder's pid/host
    RUN/data.sha256          the tokenized data's fingerprint: --resume refuses to continue on changed data
    RUN/metrics.jsonl        one line per Trainer log (stage, step, loss, lr, eval_target_score)
    RUN/stage1/, stage2/     Trainer checkpoints (checkpoint-N/{model,prompt}/ + promot_state.json), staged under
                             .staging/; stage1/selected.safetensors: stage 1's outcome (multi-task: stage1-<task>/)
    RUN/lora/                PEFT LoRA adapter (lora methods; model/ holds the merged weights)
    RUN/model/               save_pretrained + tokenizer (README.md: the model card)
    RUN/prompt/              PEFT prompt-tuning adapter (methods with a prompt)
    RUN/prompts/<name>/      carried prompts (sequential training) and multi-task prompts
    RUN/run.json             written last: the run is complete
    RUN/eval.json, flips.jsonl, flips.md    written by `promot eval`
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from promot.errors import CheckpointError

CONFIG = "config.yaml"
DATA_FINGERPRINT = "data.sha256"
CONFIG_FINGERPRINT = "config.fingerprint.json"
METRICS = "metrics.jsonl"
RUN_INFO = "run.json"
EVAL = "eval.json"
FLIPS = "flips.jsonl"
FLIPS_MD = "flips.md"
MODEL = "model"
PROMPT = "prompt"
PROMPTS = "prompts"
LORA = "lora"
STAGE1 = "stage1"
STAGE2 = "stage2"
WISE_FT = "wise-ft"
"""run.json `stages` key and metrics.jsonl `stage` of WiSE-FT's α grid (θ = α·θ_tuned + (1−α)·θ_base)."""
MODEL_CARD = "README.md"

# Inside a stage folder.
STAGING = ".staging"
"""Checkpoints are written under <stage>/.staging/checkpoint-N and renamed into place when complete."""
PROMOT_STATE = "promot_state.json"
SELECTED = "selected.safetensors"


def stage1_name(task: str | None = None) -> str:
    """stage1, or a multi-task run's per-task stage 1 folder (stage1-<task>)."""
    return STAGE1 if task is None else f"{STAGE1}-{task}"


def lock_path(run_dir: str | Path) -> Path:
    """The run directory's writer lock: `.NAME.lock` beside it, so deleting RUN (overwrite) keeps the lock."""
    run = Path(os.path.realpath(run_dir))  # `runs/x/`, `runs/./x` and a symlink to it: one directory, one lock
    return run.parent / f".{run.name}.lock"


def best_weights(shard: int | None) -> str:
    """Best-so-far weights in a checkpoint: one file, or under FSDP2 one per process (each holds its shards)."""
    return "best_so_far.safetensors" if shard is None else f"best_so_far.{shard}.safetensors"


def prompts_path(name: str) -> str:
    """A carried or per-task prompt's folder, relative to the run directory (as run.json records it)."""
    return f"{PROMPTS}/{name}"


def read_run_info(run_dir: str | Path) -> dict:
    """run.json: refused when missing (the run is not finished) or unreadable."""
    path = Path(run_dir) / RUN_INFO
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: not a finished promot run (no {RUN_INFO})")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: invalid JSON ({e.msg}, line {e.lineno})") from None


def read_eval(run_dir: str | Path) -> dict | None:
    """eval.json, or None before `promot eval` ran."""
    path = Path(run_dir) / EVAL
    return json.loads(path.read_text()) if path.is_file() else None


def _jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_metrics(run_dir: str | Path) -> list[dict]:
    """metrics.jsonl's records ([] when there is none)."""
    return _jsonl(Path(run_dir) / METRICS)


def read_flips(run_dir: str | Path) -> list[dict]:
    """flips.jsonl's records ([] before `promot eval` ran)."""
    return _jsonl(Path(run_dir) / FLIPS)
