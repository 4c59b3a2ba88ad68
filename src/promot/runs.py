"""Reading finished run directories: run.json, the fingerprint-checked tuned model, and the prompts a run carries.

A run carries its own prompt (`prompt/`) and, when it continued an earlier run (`model.init_from`, sequential
ProMoT), the earlier runs' prompts under `prompts/<name>/`, re-saved with the new model's fingerprint added: the
earlier task keeps its own prompt on the final model, and the prompt still refuses any unrelated model.
"""
from __future__ import annotations

import json
from pathlib import Path

from promot.errors import CheckpointError
from promot.models import LoadedModel, fingerprint, load_model
from promot.prompt import SavedPrompt, check_compatible, load_prompt, save_prompt


def read_info(run_dir: str | Path) -> dict:
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: not a finished promot run (no run.json)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: invalid JSON ({e.msg}, line {e.lineno})") from None


def load_tuned_model(run_dir: str | Path, info: dict, dtype: str, trust_remote_code: bool) -> tuple[LoadedModel, str]:
    """The run's model/, refused if its weights no longer match the fingerprint in run.json."""
    loaded = load_model(str(Path(run_dir) / "model"), dtype, trust_remote_code)
    model_fp = fingerprint(loaded.model, loaded.tokenizer)
    if model_fp != info["model"]["fingerprint"]:
        raise CheckpointError(f"{Path(run_dir) / 'model'}: weights changed since the run was written (fingerprint)")
    return loaded, model_fp


def prompt_names(run_dir: str | Path) -> list[str]:
    """Names of the earlier runs' prompts this run carries (prompts/<name>/)."""
    folder = Path(run_dir) / "prompts"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def prompt_dir(run_dir: str | Path, name: str | None) -> Path:
    """prompt/ (name None) or prompts/<name>/; an unknown name is an error listing the known ones."""
    run_dir = Path(run_dir)
    if name is None:
        return run_dir / "prompt"
    if name not in prompt_names(run_dir):
        raise CheckpointError(f"{run_dir}: no prompt named {name!r} (known: {', '.join(prompt_names(run_dir)) or 'none'})")
    return run_dir / "prompts" / name


def checked_prompt(run_dir: str | Path, name: str | None, model, model_fp: str):
    """prompt/ or prompts/<name>/ as a [P, H] tensor, refused unless made for `model` (width and fingerprint)."""
    where = prompt_dir(run_dir, name)
    saved = load_prompt(where)
    check_compatible(saved, model, model_fp, str(where))
    return saved.embeddings


def carried_prompts(run_dir: str | Path, info: dict) -> dict[str, SavedPrompt]:
    """Every prompt a run hands on to a run that continues it: its own (named after the run) and those it carries."""
    run_dir = Path(run_dir)
    out = {name: load_prompt(prompt_dir(run_dir, name)) for name in prompt_names(run_dir)}
    if info.get("prompt"):
        out[run_dir.name] = load_prompt(run_dir / "prompt")
    return out


def save_carried(run_dir: Path, prompts: dict[str, SavedPrompt], model, model_fp: str) -> None:
    for name, saved in prompts.items():
        save_prompt(run_dir / "prompts" / name, saved.embeddings, model, str((run_dir / "model").resolve()),
                    sorted({*saved.fingerprints, model_fp}))
