"""What this machine and launch refuse of a valid config, declared once as a table (config_rules.Rule, given the
run's Environment): fp16 without CUDA, what FSDP2's sharded parameters cannot do, a `report_to` integration that is
not installed, and what each method room refuses under the run's sharding (its `check`). Checked before anything
loads or is written, every problem in one message; `promot compare` checks every method's run before training any."""
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
