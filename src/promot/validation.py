"""Config checks declared once, apart from the sections' dataclasses (config_sections.py): every value's type from
its field's declared type (`type_issues`; a `Literal` key names its choices), the ranges of numeric keys (`_RANGES`), and the YAML loader that refuses
duplicate keys.
`config.validate` runs them with its own combination checks and the method rooms' (promot/methods/), every problem
in one message."""
from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable
from typing import Any

import yaml


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """A config dataclass's fields' declared types, resolved (`int | None`, `list[TaskConfig]`, a section's class)."""
    return typing.get_type_hints(cls)


def optional_of(kind: Any) -> Any:
    """`X` for a declared `X | None` (None: the type is not optional)."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and len(args) == 2 and type(None) in args:
        return args[0] if args[1] is type(None) else args[1]
    return None


def type_issues(node: Any, where: str = "") -> list[tuple[str, str]]:
    """(dotted key, problem) for every value whose type is not the one its dataclass field declares — text in text
    fields, integers in integer fields, finite numbers in float fields (`1e309` is inf), true/false in flags. The
    wrong value is replaced by the field's default, so the range checks after this see only well-typed values."""
    out, hints = [], field_types(type(node))
    for f in dataclasses.fields(node):
        path, value, kind = f"{where}{f.name}", getattr(node, f.name), hints[f.name]
        if typing.get_origin(kind) is list and dataclasses.is_dataclass(typing.get_args(kind)[0]):  # tasks
            for i, task in enumerate(value or []):
                out += type_issues(task, f"{path}[{i}].") if dataclasses.is_dataclass(task) else []
            continue
        if dataclasses.is_dataclass(value):
            out += type_issues(value, f"{path}.")
            continue
        problem = _wrong_type(value, kind, f.name)
        if problem:
            choices = _choices(kind)
            out.append((path, f"{path} {value!r} is not one of {', '.join(choices)}" if choices and
                        isinstance(value, str) else f"{path} must be {problem}, got {value!r}"))
            # the checker's own deep copy (checked_config), frozen like every config: the default stands in
            object.__setattr__(node, f.name, f.default if f.default is not dataclasses.MISSING else f.default_factory())
    return out


def _wrong_type(value: Any, kind: Any, name: str) -> str | None:
    """What `value` should be for declared type `kind` (None: it is that)."""
    from promot.options import finite

    base = optional_of(kind)
    if base is not None and value is None:
        return None
    base = base or kind
    if choices := _choices(base):
        return None if isinstance(value, str) and value in choices else f"one of {', '.join(choices)}"
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if base is str:
        return None if isinstance(value, str) else "text"
    if base is bool:
        return None if isinstance(value, bool) else "true or false"
    if base is int:
        return None if is_int else "an integer"
    if base is float:
        return None if finite(value) else "a finite number"
    if base == list[str]:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return None if ok or (name == "report_to" and isinstance(value, str)) else "a list of text values"
    if base == list[float]:
        ok = isinstance(value, list) and all(finite(v) for v in value)
        return None if ok else "a list of finite numbers"
    return None  # bool | str (bf16), list[str] | str (lora.target_modules): checked by value, by their owners


def _choices(kind: Any) -> tuple[str, ...]:
    """The words a `Literal[...]` (or `Literal[...] | None`) key takes; () for any other type."""
    kind = optional_of(kind) or kind
    return typing.get_args(kind) if typing.get_origin(kind) is typing.Literal else ()


# Every numeric key's range, declared once (types are checked by declaration first, so each rule sees a number;
# prompt.length's two-part rule is in config_rules.RULES; the method rooms' own settings, lora.*, replay.fraction,
# wise_ft.*, l2_sp.weight, freeze.*, sdft.*, by their rooms: promot/methods/).
_RANGES: dict[str, tuple[str, Any]] = {
    "seed": ("an integer in [0, 2**32)", lambda v: 0 <= v < 2 ** 32),
    "mixing_temperature": ("a positive number", lambda v: v > 0),
    "data.validation_size": ("an integer >= 0", lambda v: v >= 0),
    "data.max_length": ("an integer > 1", lambda v: v > 1),
    "data.shots": ("an integer >= 0", lambda v: v >= 0),
    "eval.max_new_tokens": ("a positive integer", lambda v: v > 0),
    "eval.batch_size": ("a positive integer", lambda v: v > 0),
    "eval.limit": ("a positive integer or null", lambda v: v is None or v > 0),
    "monitor.shots": ("an integer >= 0", lambda v: v >= 0),
    "monitor.limit": ("a positive integer", lambda v: v > 0),
    "monitor.every": ("a positive integer", lambda v: v > 0),
    "monitor.alignment_every": ("an integer >= 0", lambda v: v >= 0),
    "monitor.alignment_batches": ("a positive integer", lambda v: v > 0),
    "monitor.alignment_layers": ("a positive integer", lambda v: v > 0),
    "guard.ceiling": ("in [0, 100] points", lambda v: 0 <= v <= 100),
    "guard.target_tolerance": ("in [0, 100] points or null", lambda v: v is None or 0 <= v <= 100),
    "guard.limit": ("a positive integer or null", lambda v: v is None or v > 0),
    "guard.max_new_tokens": ("a positive integer or null", lambda v: v is None or v > 0),
    **{f"{st}.{key}": rule for st in ("stage1", "stage2") for key, rule in {
        **{key: ("a positive integer", lambda v: v > 0) for key in ("steps", "batch_size", "grad_accum")},
        **{key: ("an integer >= 0", lambda v: v >= 0) for key in ("eval_every", "save_every")},
        "save_total_limit": ("a positive integer or null", lambda v: v is None or v > 0),
        "warmup_steps": ("a step count or a fraction in [0, 1)", lambda v: v >= 0 and (v < 1 or float(v).is_integer())),
        "lr": ("a positive number", lambda v: v > 0),
        "label_smoothing": ("in [0, 1)", lambda v: 0 <= v < 1),
        "weight_decay": ("a number >= 0", lambda v: v >= 0),
        "max_grad_norm": ("a number >= 0 (0: no clipping)", lambda v: v >= 0),
        "dropout": ("in [0, 1) or null", lambda v: v is None or 0 <= v < 1),
    }.items()},
}


def _get(cfg: Any, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def range_issues(cfg: Any) -> list[str]:
    """The `_RANGES` table's problems (and tasks[].max_new_tokens), for a config whose types are right."""
    issues = [f"{key} must be {what}, got {_get(cfg, key)!r}" for key, (what, ok) in _RANGES.items()
              if not ok(_get(cfg, key))]
    for i, t in enumerate(cfg.tasks):
        if t.max_new_tokens is not None and t.max_new_tokens <= 0:
            issues.append(f"tasks[{i}].max_new_tokens must be a positive integer or null, got {t.max_new_tokens!r}")
    return issues


def checked_config(cfg: Any, value_issues: Callable[[Any], list[str]]) -> Any:
    """Types first (declared by the dataclass fields), then ranges, bf16 and `value_issues` (config's own checks), on
    a copy whose wrong-typed values are defaults: nothing reported twice, no check trips over a string where a
    number belongs. Raises one ConfigError with every problem; returns a new config (bf16 parsed)."""
    import copy

    from promot.errors import ConfigError
    from promot.precision import parse_bf16

    checked = copy.deepcopy(cfg)
    typed = type_issues(checked)
    issues = [msg for _, msg in typed]
    wrong = tuple(path for path, _ in typed)
    issues += [msg for msg in [*value_issues(checked), *range_issues(checked)] if not msg.startswith(wrong)]
    bf16 = cfg.bf16
    try:
        bf16 = parse_bf16(cfg.bf16)
    except ValueError as e:
        issues.append(str(e))
    if bf16 is True and cfg.fp16 is True:
        issues.append("bf16 and fp16 are alternatives: set one")
    if issues:
        raise ConfigError("; ".join(issues))
    return dataclasses.replace(cfg, bf16=bf16)  # a new config: the caller's stays as it was


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last one silently): the
    error names both lines. `<<` merge keys keep their meaning (a key beside a merge overrides it)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = seen.setdefault(key, key_node.start_mark.line)
                except TypeError:  # an unhashable key: PyYAML's own error follows
                    continue
                if first != key_node.start_mark.line:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key '{key}', first at line {first + 1}: YAML would silently keep "
                        "only the last", key_node.start_mark)
        return super().construct_mapping(node, deep)
