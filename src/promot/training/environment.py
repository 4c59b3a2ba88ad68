"""What this machine and launch refuse of a valid config, declared once as a table (config_rules.Rule, given the
run's Environment): fp16 without CUDA, what FSDP2's sharded parameters cannot do, a `report_to` integration that is
not installed, and what each method room refuses under the run's sharding (its `check`). Checked before anything
loads or is written, every problem in one message; `promot compare` checks every method's run before training any.
What the loaded model cannot give the run (`check_model`: the rooms' `fits`, the prompt beside the longest example)
is checked once the model and data are read, before anything is written, also in one message."""
from __future__ import annotations

from dataclasses import dataclass

from promot.config import RunConfig
from promot.config_rules import Rule
from promot.distributed import sharding
from promot.errors import ConfigError
from promot.training.methods import Method


@dataclass(frozen=True)
class Environment:
    cfg: RunConfig
    method: Method
    sharding: str | None
    """`fsdp`, `deepspeed` or None (promot.distributed.sharding)."""
    cuda: bool


def _adafactor_rule(stage: str) -> Rule:
    return Rule(lambda e: not (e.sharding == "fsdp" and getattr(e.method, stage)
                               and getattr(e.cfg, stage).optimizer == "adafactor"),
                f"{stage}.optimizer: transformers' Adafactor cannot update FSDP2's sharded (DTensor) parameters; "
                "set adamw")


ENVIRONMENT_RULES: tuple[Rule, ...] = (
    Rule(lambda e: not e.cfg.fp16 or e.cuda,
         "fp16: mixed precision with loss scaling needs a CUDA GPU (on CPU, bf16: true)"),
    Rule(lambda e: not (e.sharding == "fsdp" and e.cfg.monitor.alignment_every),
         "monitor.alignment_every: gradient alignment differentiates the sharded parameters themselves, which FSDP2 "
         "never puts in the graph; run `promot diagnose` without fsdp2"),
    _adafactor_rule("stage1"),
    _adafactor_rule("stage2"),
)


def _report_to_problems(cfg: RunConfig) -> list[str]:
    """A `report_to` integration that is unknown or not installed fails here, not in Trainer after the run directory
    exists."""
    from transformers.integrations.integration_utils import (INTEGRATION_TO_CALLBACK,
                                                             get_available_reporting_integrations)

    names = [cfg.report_to] if isinstance(cfg.report_to, str) else list(cfg.report_to or [])
    out, available = [], None
    for name in (n for n in names if n not in ("all", "none")):
        if name not in INTEGRATION_TO_CALLBACK:
            out.append(f"report_to: '{name}' is not one of {', '.join(INTEGRATION_TO_CALLBACK)}")
        elif name not in (available := available or get_available_reporting_integrations()):
            out.append(f"report_to: '{name}' is not installed (pip install {name.replace('_', '-')})")
    return out


def check_environment(cfg: RunConfig, method: Method) -> None:
    """Refuse, in one message, whatever this machine and launch cannot run of the config (the table above, the
    method rooms' refusals under this sharding, report_to)."""
    import torch

    env = Environment(cfg, method, sharding(), torch.cuda.is_available())
    problems = [p for r in ENVIRONMENT_RULES if (p := r.problem(env)) is not None]
    problems += [*(method.stage2.check(cfg, env.sharding) if method.stage2 else []),
                 *(line for addon in method.addons for line in addon.check(cfg))]
    problems += _report_to_problems(cfg)
    if problems:
        raise ConfigError("; ".join(problems))


def _prompt_fit(cfg: RunConfig, method: Method, model, longest: int) -> str | None:
    """Soft prompt + the longest tokenized example must fit the model's positions: a too-long prompt otherwise
    allocates its attention (40 GB at prompt.length=100000) and fails mid-stage, after the run directory exists."""
    if not method.prompt or model.config.is_encoder_decoder:
        return None
    text_cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    limit = getattr(text_cfg, "max_position_embeddings", None) or getattr(text_cfg, "n_positions", None)
    if limit and cfg.prompt.length + longest > limit:
        return (f"prompt.length={cfg.prompt.length} + the longest example's {longest} tokens exceeds the model's "
                f"{limit} positions (shorten prompt.length or data.max_length)")
    return None


def check_model(cfg: RunConfig, method: Method, model, longest: int) -> None:
    """Refuse, in one message, what the loaded model cannot give the run: each method room's `fits` (blocks or value
    projections found by role, ...) and the soft prompt beside the longest tokenized example (`longest` tokens)."""
    problems = [line for room in (method.stage2, *method.addons) if room for line in room.fits(cfg, model)]
    if (line := _prompt_fit(cfg, method, model, longest)) is not None:
        problems.append(line)
    if problems:
        raise ConfigError("; ".join(problems))
