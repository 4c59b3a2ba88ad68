"""Where a killed run stands on disk, and what `promot train --resume RUN` needs to pick it up exactly.

A stage is resumed from its last complete checkpoint (Trainer restores optimizer, scheduler, RNG and data position;
`promot_state.json` restores best-so-far selection and how much of metrics.jsonl was written by then). A finished
stage 1 leaves `selected.safetensors` - its selected prompt and history - so it is never re-run.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers.trainer_utils import get_last_checkpoint

from promot.distributed import is_main_process, wait_for_everyone
from promot.errors import CheckpointError, ConfigError
from promot.io import atomic_file, atomic_write_text
from promot.rundir import CONFIG, CONFIG_FINGERPRINT, METRICS, SELECTED, STAGING
from promot.training.loop import read_checkpoint_state


def save_stage_result(stage_dir: Path, prompt: torch.Tensor, history: dict) -> None:
    """Stage 1's outcome, written atomically: the selected prompt [P, H] (or bank) and its selection record."""
    with atomic_file(stage_dir / SELECTED) as tmp:
        save_file({"prompt": prompt.detach().float().contiguous().cpu()}, tmp, metadata={"history": json.dumps(history)})


def load_stage_result(stage_dir: Path) -> tuple[torch.Tensor, dict] | None:
    path = stage_dir / SELECTED
    if not path.exists():
        return None
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            history = json.loads(f.metadata()["history"])
        return load_file(path)["prompt"], history
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: unreadable stage result ({e})") from None


def _trim_metrics(path: Path, stage: str, size: int | None) -> None:
    """Drop what was logged after the checkpoint we resume from: the file as it was then (`size` bytes), or, with
    no checkpoint, everything from the stage's first line on."""
    if not path.exists():
        return
    if size is not None:
        os.truncate(path, size)
        return
    rows = path.read_text().splitlines()
    keep = next((i for i, r in enumerate(rows) if json.loads(r).get("stage") == stage), len(rows))
    atomic_write_text(path, "".join(r + "\n" for r in rows[:keep]))


def resume_point(run_dir: Path, stage: str) -> str | None:
    """The stage's last complete checkpoint (None: the stage starts over), with the run directory put back to
    how it was when that checkpoint was written."""
    stage_dir = run_dir / stage
    last = get_last_checkpoint(str(stage_dir)) if stage_dir.is_dir() else None
    if is_main_process():
        shutil.rmtree(stage_dir / STAGING, ignore_errors=True)  # a save the crash interrupted
        size = read_checkpoint_state(Path(last))["metrics_bytes"] if last else None
        _trim_metrics(run_dir / METRICS, stage, size)
    wait_for_everyone()
    logging.getLogger(__name__).info("%s: %s", stage, f"resuming from {last}" if last else "no checkpoint, starting over")
    return last


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        out.update(_flat(v, f"{key}.") if isinstance(v, dict) and v else {key: v})
    return out


def config_fingerprint(cfg) -> dict:
    """A short sha256 per resolved config key (lists, e.g. `tasks`, as one value), and one of the whole, so
    `--resume` can name what was edited in config.yaml without keeping a second copy of it. `output_dir` is left
    out: a moved run directory is the same run."""
    flat = {k: v for k, v in _flat(cfg.to_dict()).items() if k != "output_dir"}
    keys = {k: hashlib.sha256(json.dumps(v, sort_keys=True, default=str).encode()).hexdigest()[:16]
            for k, v in sorted(flat.items())}
    return {"sha256": hashlib.sha256(json.dumps(keys).encode()).hexdigest(), "keys": keys}


def changed_keys(run_dir: Path, cfg) -> list[str] | None:
    """What "the same config" means, for `--resume` and for compare's reuse alike: the resolved keys (output_dir
    aside) whose values differ from those the run in `run_dir` started with; None when the run recorded no
    fingerprint (runs from before fingerprints)."""
    path = Path(run_dir) / CONFIG_FINGERPRINT
    if not path.is_file():
        return None
    try:
        recorded = json.loads(path.read_text())["keys"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: unreadable config fingerprint ({e})") from None
    now = config_fingerprint(cfg)["keys"]
    return sorted(k for k in recorded.keys() | now.keys() if recorded.get(k) != now.get(k))


def check_config_unchanged(run_dir: Path, cfg) -> None:
    """Refuse to resume when config.yaml no longer resolves to the config the run started with, naming the keys."""
    if changed := changed_keys(run_dir, cfg):
        raise ConfigError(f"{run_dir / CONFIG}: edited since the run started ({', '.join(changed)} changed); "
                          "resuming would not continue the same run (undo the edit, or start a new run)")
