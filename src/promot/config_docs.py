"""Every config key with its default and its doc, for `promot train --help`: the attribute docstrings of the config
dataclasses, read from the source with `ast` because Python drops attribute docstrings at runtime."""
from __future__ import annotations

import dataclasses

from promot import config
from promot.config import RunConfig, TaskConfig


def describe() -> list[tuple[str, object, str]]:
    """(dotted key, default, doc) for every config key — the attribute docstrings of config.py's dataclasses, read
    with `ast` because Python drops attribute docstrings at runtime. Feeds `promot train --help`."""
    import ast
    import inspect

    docs: dict[tuple[str, str], str] = {}
    for node in ast.parse(inspect.getsource(config)).body:
        if isinstance(node, ast.ClassDef):
            body = node.body
            for a, b in zip(body, body[1:]):
                if isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant):
                    docs[(node.name, a.target.id)] = " ".join(str(b.value.value).split())
    rows = []
    root = RunConfig()
    for f in dataclasses.fields(RunConfig):
        value = getattr(root, f.name)
        if dataclasses.is_dataclass(value):
            rows.append((f.name, None, docs.get(("RunConfig", f.name), "")))
            for sub in dataclasses.fields(value):
                doc = next((docs[(k.__name__, sub.name)] for k in type(value).__mro__ if (k.__name__, sub.name) in docs), "")
                rows.append((f"{f.name}.{sub.name}", getattr(value, sub.name), doc))  # replay.* inherit data.*'s docs
        else:
            rows.append((f.name, value, docs.get(("RunConfig", f.name), "")))
            if f.name == "tasks":  # a list of TaskConfig: show its item keys
                task = TaskConfig()
                rows += [(f"tasks[].{sub.name}", None if sub.name == "data" else getattr(task, sub.name),
                          docs.get(("TaskConfig", sub.name), "") or ("a data section, as above" if sub.name == "data" else ""))
                         for sub in dataclasses.fields(TaskConfig)]
    return rows


def config_help(epilog: str) -> str:
    """The key table `promot train --help` shows below its options."""
    lines = ["config keys (YAML or key.sub=value; default in brackets):"]
    for key, default, doc in describe():
        if default is None and "." not in key and not doc:
            continue
        shown = "" if default is None and "." not in key else f" [{default!r}]"
        lines.append(f"  {key}{shown}" + (f"  {doc}" if doc else ""))
    return "\n".join([*lines, "", epilog])
