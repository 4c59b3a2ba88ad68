"""Every config key with its default and its doc, for `promot train --help`: the attribute docstrings of the config
dataclasses (config.py's and the method rooms', promot/methods/), read from the source with `ast` because Python
drops attribute docstrings at runtime."""
from __future__ import annotations

import dataclasses

from promot.config import RunConfig, TaskConfig


def _field_docs(cls: type) -> dict[str, str]:
    """Field → attribute docstring of dataclass `cls`, read from the source of it and its bases (a field's nearest
    declaration wins: replay.* inherit data.*'s docs, `fraction` is the replay room's)."""
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for k in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):
        body = ast.parse(textwrap.dedent(inspect.getsource(k))).body[0].body
        for a, b in zip(body, body[1:]):
            if isinstance(a, ast.AnnAssign) and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant):
                docs[a.target.id] = " ".join(str(b.value.value).split())
    return docs


def describe() -> list[tuple[str, object, str]]:
    """(dotted key, default, doc) for every config key — the attribute docstrings of the config dataclasses. Feeds
    `promot train --help`."""
    rows = []
    root, docs = RunConfig(), _field_docs(RunConfig)
    for f in dataclasses.fields(RunConfig):
        value = getattr(root, f.name)
        if dataclasses.is_dataclass(value):
            rows.append((f.name, None, docs.get(f.name, "")))
            sub_docs = _field_docs(type(value))
            rows += [(f"{f.name}.{sub.name}", getattr(value, sub.name), sub_docs.get(sub.name, ""))
                     for sub in dataclasses.fields(value)]
        else:
            rows.append((f.name, value, docs.get(f.name, "")))
            if f.name == "tasks":  # a list of TaskConfig: show its item keys
                task, task_docs = TaskConfig(), _field_docs(TaskConfig)
                rows += [(f"tasks[].{sub.name}", None if sub.name == "data" else getattr(task, sub.name),
                          task_docs.get(sub.name, "") or ("a data section, as above" if sub.name == "data" else ""))
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
