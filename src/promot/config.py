"""Run configuration: YAML data in, a validated, frozen-by-convention dataclass tree out.

`load_config(path, overrides)` reads YAML, applies `a.b=c` overrides (values parsed as YAML), rejects unknown
keys with a suggestion and collects every invalid value into one error line before anything heavy is loaded.
The sections themselves are config_sections.py's frozen dataclasses (re-exported here); the method rooms'
sections are declared, and checked, by their rooms in promot/methods/; `validate` gathers their problems with the
rest.
"""
from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Any

import yaml

from promot import methods
from promot.config_rules import broken_rules
from promot.errors import ConfigError
from promot.config_sections import (DataConfig, EvalConfig, GuardConfig, LrScheduler, Metric, ModelConfig,
                                    MonitorConfig, PromptConfig, PromptInit, ReplayConfig, RunConfig, StageConfig,
                                    TaskConfig)
from promot.validation import UniqueKeyLoader, checked_config, field_types, optional_of

METHODS = tuple(methods.METHODS)
"""The method names (the table: promot/methods/__init__.py)."""
OPTIMIZERS = {"adafactor": "adafactor", "adamw": "adamw_torch"}
"""Our optimizer names → Trainer's `optim`. Trainer's `adafactor` is T5X-style: fixed lr, no relative step, no
parameter scaling (`scale_parameter` adds it)."""
PROMPT_INITS = typing.get_args(PromptInit)
LR_SCHEDULERS = typing.get_args(LrScheduler)
METRICS = typing.get_args(Metric)


def input_paths(cfg: RunConfig) -> list[str]:
    """Every local file or folder the run reads (model, earlier run, data, adapter, task folders), so that an
    `overwrite` of output_dir never deletes one of them."""
    datas = [cfg.data, cfg.replay, *(t.data for t in cfg.tasks)]
    named = [cfg.model.name, cfg.model.init_from, cfg.prompt.from_adapter, *cfg.monitor.include_path,
             *(path for d in datas for path in (d.train, d.validation))]
    return [p for p in named if p and not p.startswith("hf:") and Path(p).exists()]


# Names users bring from TrainingArguments / PEFT, mapped to ours for suggestions.
_HF_NAMES = {
    "learning_rate": "lr", "max_steps": "steps", "per_device_train_batch_size": "batch_size",
    "gradient_accumulation_steps": "grad_accum", "optim": "optimizer", "num_virtual_tokens": "length",
    "model_name_or_path": "name", "label_smoothing_factor": "label_smoothing", "eval_steps": "eval_every",
    "save_steps": "save_every", "lr_scheduler_type": "lr_scheduler",
}


def _suggest(key: str, choices: list[str]) -> str:
    aliases = {k: v for k, v in _HF_NAMES.items() if v in choices}
    close = difflib.get_close_matches(key, choices + list(aliases), n=1)
    if close:
        return f" (did you mean '{aliases.get(close[0], close[0])}'?)"
    return f" (known: {', '.join(sorted(choices))})"


def _coerce(value: Any, ftype: Any) -> Any:
    """PyYAML reads `3e-5` as a string (YAML 1.1 wants `3.0e-5`); accept it where a float is expected."""
    if isinstance(value, str) and (optional_of(ftype) or ftype) is float:
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _build(cls: type, raw: Any, where: str) -> Any:
    """Instantiate dataclass `cls` from a mapping, recursing into nested dataclasses; unknown keys are errors."""
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(raw).__name__}")
    fields, hints = {f.name: f for f in dataclasses.fields(cls)}, field_types(cls)
    kwargs = {}
    for key, value in raw.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields:
            raise ConfigError(f"unknown config key '{path}'{_suggest(str(key), list(fields))}")
        ftype = hints[key]
        sub = ftype if dataclasses.is_dataclass(ftype) else None
        if ftype == list[TaskConfig]:
            if not isinstance(value, list):
                raise ConfigError(f"{path}: expected a list of tasks")
            kwargs[key] = [_build(TaskConfig, v, f"{path}[{i}]") for i, v in enumerate(value)]
            continue
        if ftype in (str, str | None) and isinstance(value, (dict, list)):
            kind = "a mapping" if isinstance(value, dict) else "a list"
            raise ConfigError(f"{path}: expected a string, got {kind} (quote it: YAML reads {{...}} as a mapping)")
        kwargs[key] = _build(sub, value, path) if sub else _coerce(value, ftype)
    if cls is RunConfig:
        # A partial stage mapping keeps the other stage-specific defaults (stage 1's lr differs from stage 2's).
        for stage in ("stage1", "stage2"):
            defaults = dataclasses.asdict(fields[stage].default_factory())
            kwargs[stage] = _build(StageConfig, {**defaults, **(raw.get(stage) or {})}, stage)
    return cls(**kwargs)


def _set_dotted(tree: dict, dotted: str) -> None:
    if "=" not in dotted:
        raise ConfigError(f"override '{dotted}' must look like key.sub=value")
    key, _, text = dotted.partition("=")
    parts = key.strip().split(".")
    try:
        value = yaml.load(text, Loader=UniqueKeyLoader) if text else ""
    except yaml.YAMLError:
        value = text
    if isinstance(value, (dict, list)) and _field_type(parts) in (str, str | None):
        value = text  # `data.template={question}`: the literal template, not a YAML mapping
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{dotted}': '{part}' is not a section")
    node[parts[-1]] = value


def _field_type(parts: list[str]) -> Any:
    """The declared type of dotted key `parts` (e.g. data.template → `str | None`); None if not a known key."""
    cls: type | None = RunConfig
    ftype = None
    for part in parts:
        hints = field_types(cls) if cls else {}
        if part not in hints:
            return None
        ftype = hints[part]
        cls = ftype if dataclasses.is_dataclass(ftype) else None
    return ftype


def validate(cfg: RunConfig) -> RunConfig:
    """Check every value; raise one ConfigError listing all problems (validation.py: types, ranges; then these, and
    every method room's: promot/methods/)."""
    return checked_config(cfg, broken_rules)


def load_config(source: str | Path | dict | None = None, overrides: list[str] | None = None) -> RunConfig:
    """YAML file (or mapping) + dotted overrides → validated RunConfig."""
    if source is None:
        tree: dict = {}
    elif isinstance(source, dict):
        tree = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            tree = yaml.load(path.read_text(), Loader=UniqueKeyLoader) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f":{mark.line + 1}" if mark else ""
            raise ConfigError(f"{path}{where}: invalid YAML ({getattr(e, 'problem', e)})") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
    for item in overrides or []:
        _set_dotted(tree, item)
    try:
        cfg = _build(RunConfig, tree, "")
    except TypeError as e:
        raise ConfigError(f"config: {e}") from None
    return validate(cfg)


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


__all__ = ["DataConfig", "EvalConfig", "GuardConfig", "LR_SCHEDULERS", "METHODS", "METRICS", "ModelConfig",
           "MonitorConfig", "OPTIMIZERS", "PromptConfig", "ReplayConfig", "RunConfig", "StageConfig", "TaskConfig",
           "dump_config", "input_paths", "load_config", "validate"]
