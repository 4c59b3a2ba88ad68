"""Record shapes → examples: the shapes people keep their fine-tuning data in, detected from a record's keys.

- prompt-completion (TRL standard): `{prompt: str, completion: str}`, or any columns through `data.template` /
  `data.completion` — the text path, unchanged;
- messages (TRL conversational, OpenAI fine-tuning): `{messages: [{role, content}, …]}`, or `{prompt: [messages],
  completion: [messages]}`;
- alpaca (LLaMA-Factory): `instruction`, `input`, `output`, optional `system` and `history` ([[user, assistant], …]);
- sharegpt (LLaMA-Factory): `conversations: [{from, value}, …]` with roles human / gpt / system, optional `system`.

The last three become one conversation: messages of system / user / assistant whose last turn is the assistant's
(the target). `data.columns` maps renamed fields (our name → the file's), `data.roles` renamed roles.
"""
from __future__ import annotations

from promot.data.records import Record
from promot.errors import ConfigError, DataError

FORMATS = ("auto", "prompt-completion", "messages", "alpaca", "sharegpt")
TRAIN_ON = ("all", "last")
ROLES = ("system", "user", "assistant")
_BUILTIN_ROLES = {"system": "system", "user": "user", "assistant": "assistant", "human": "user", "gpt": "assistant"}
_COLUMNS = ("messages", "conversations", "prompt", "completion", "instruction", "input", "output", "system",
            "history", "role", "content")


def check_config(cfg) -> None:
    """The data section's shape keys (format, columns, roles, train_on), checked before any record is read."""
    problems = []
    if cfg.format not in FORMATS:
        problems.append(f"data.format '{cfg.format}' is not one of {', '.join(FORMATS)}")
    if cfg.train_on not in TRAIN_ON:
        problems.append(f"data.train_on '{cfg.train_on}' is not one of {', '.join(TRAIN_ON)}")
    for key in ("columns", "roles"):
        value = getattr(cfg, key)
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            problems.append(f"data.{key} must be a mapping of names to names, got {value!r}")
    if isinstance(cfg.columns, dict) and (bad := sorted(set(cfg.columns) - set(_COLUMNS))):
        problems.append(f"data.columns: unknown field {', '.join(bad)} (ours: {', '.join(_COLUMNS)})")
    if isinstance(cfg.roles, dict) and (bad := sorted(v for v in cfg.roles.values() if v not in ROLES)):
        problems.append(f"data.roles maps to {', '.join(bad)}; roles are {', '.join(ROLES)}")
    if problems:
        raise ConfigError("; ".join(problems))


class Shape:
    """How one data section reads records: its format, column and role names."""

    def __init__(self, cfg) -> None:
        check_config(cfg)
        self.format, self.template, self.columns = cfg.format, cfg.template, cfg.columns
        self.roles = {**_BUILTIN_ROLES, **cfg.roles}

    def col(self, name: str) -> str:
        return self.columns.get(name, name)

    def get(self, record: Record, name: str):
        """A field by our name; None (JSON null, or what `datasets` fills in for a missing column) is absent."""
        return record.fields.get(self.col(name))

    def detect(self, record: Record) -> str:
        """`data.format`, or the shape a record's keys say: messages, sharegpt, alpaca, else prompt-completion
        (an explicit `data.template` always means prompt-completion)."""
        if self.format != "auto":
            return self.format
        if self.template is not None:
            return "prompt-completion"
        if self.get(record, "messages") is not None:
            return "messages"
        if self.get(record, "conversations") is not None:
            return "sharegpt"
        if self.get(record, "instruction") is not None and self.get(record, "output") is not None:
            return "alpaca"
        if isinstance(self.get(record, "prompt"), list):
            return "messages"  # TRL conversational prompt-completion
        return "prompt-completion"

    def conversation(self, record: Record, kind: str) -> list[dict]:
        """A conversational record → [{role, content}] (system / user / assistant), checked: text where text
        belongs, known roles, an assistant turn last and none empty."""
        messages = {"messages": self._messages, "alpaca": self._alpaca, "sharegpt": self._sharegpt}[kind](record)
        return checked(messages, record.where)

    def _turns(self, record: Record, value, field: str, role_key: str, content_key: str) -> list[dict]:
        if not isinstance(value, list):
            raise DataError(f"{record.where}: field '{field}' is {_kind(value)}, expected a list of turns")
        out = []
        for i, turn in enumerate(value):
            where = f"{field}[{i}]"
            if not isinstance(turn, dict):
                raise DataError(f"{record.where}: field '{where}' is {_kind(turn)}, expected a turn "
                                f"{{{role_key}, {content_key}}}")
            for key in (role_key, content_key):
                if turn.get(key) is None:
                    raise DataError(f"{record.where}: field '{where}.{key}' is missing (have: "
                                    f"{', '.join(sorted(turn)) or 'none'})")
            role = turn[role_key]
            if not isinstance(role, str) or role not in self.roles:
                known = ", ".join(sorted(self.roles))
                raise DataError(f"{record.where}: field '{where}.{role_key}': unknown role {role!r} (known: {known}; "
                                "map others with data.roles)")
            out.append({"role": self.roles[role], "content": content(turn[content_key], record.where,
                                                                     f"{where}.{content_key}")})
        return out

    def _messages(self, record: Record) -> list[dict]:
        role, content = self.col("role"), self.col("content")
        value = self.get(record, "messages")
        if value is not None:
            return self._turns(record, value, self.col("messages"), role, content)
        prompt, completion = self.get(record, "prompt"), self.get(record, "completion")
        if prompt is None or completion is None:
            raise DataError(f"{record.where}: a conversation needs field '{self.col('messages')}', or "
                            f"'{self.col('prompt')}' and '{self.col('completion')}' as lists of messages")
        return [*self._turns(record, prompt, self.col("prompt"), role, content),
                *self._turns(record, completion, self.col("completion"), role, content)]

    def _sharegpt(self, record: Record) -> list[dict]:
        role, content = self.columns.get("role", "from"), self.columns.get("content", "value")
        turns = self._turns(record, self.get(record, "conversations"), self.col("conversations"), role, content)
        return self._with_system(record, turns)

    def _alpaca(self, record: Record) -> list[dict]:
        where = record.where

        def field(name: str, required: bool = False) -> str:
            value = self.get(record, name)
            if value is None and required:
                raise DataError(f"{where}: field '{self.col(name)}' is missing (have: {', '.join(sorted(record.fields))})")
            return "" if value is None else text(value, where, self.col(name))

        instruction, extra = field("instruction", True), field("input")
        turns = []
        history = self.get(record, "history") or []
        if not isinstance(history, list):
            raise DataError(f"{where}: field '{self.col('history')}' is {_kind(history)}, expected [[user, assistant], …]")
        for i, pair in enumerate(history):
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
                raise DataError(f"{where}: field '{self.col('history')}[{i}]' is not a [user, assistant] pair")
            turns += [{"role": "user", "content": text(pair[0], where, f"{self.col('history')}[{i}][0]")},
                      {"role": "assistant", "content": text(pair[1], where, f"{self.col('history')}[{i}][1]")}]
        # LLaMA-Factory's alpaca converter: the instruction, then the input on the next line.
        turns += [{"role": "user", "content": "\n".join(p for p in (instruction, extra) if p)},
                  {"role": "assistant", "content": field("output", True)}]
        return self._with_system(record, turns)

    def _with_system(self, record: Record, turns: list[dict]) -> list[dict]:
        system = self.get(record, "system")
        if system is None or system == "":
            return turns
        return [{"role": "system", "content": text(system, record.where, self.col("system"))}, *turns]


def _kind(value) -> str:
    return {dict: "a mapping", list: "a list", type(None): "null", bool: "a boolean", str: "a string"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)


def text(value, where: str, field: str) -> str:
    """`value` if it is a string; a list, mapping, number or null where text belongs is refused (never its repr)."""
    if isinstance(value, str):
        return value
    raise DataError(f"{where}: field '{field}' is {_kind(value)}, where text belongs")


def content(value, where: str, field: str) -> str:
    """A turn's content: text, or OpenAI / TRL content parts (`[{"type": "text", "text": …}, …]`) whose text parts
    are joined with newlines, as vLLM does for a text-only model. Any other part (image, audio, …) is refused: promot
    trains text models."""
    if not isinstance(value, list):
        return text(value, where, field)
    texts = []
    for i, part in enumerate(value):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind != "text":
            what = f"a content part of type {kind!r}" if kind else f"{_kind(part)}, not a content part"
            raise DataError(f"{where}: field '{field}[{i}]' is {what}; promot trains on text parts only")
        texts.append(text(part.get("text"), where, f"{field}[{i}].text"))
    return "\n".join(texts)


def checked(messages: list[dict], where: str) -> list[dict]:
    """A trainable conversation: after any system turns a user speaks first, the last turn is the assistant's,
    and no assistant turn is empty."""
    body = [m for m in messages if m["role"] != "system"]
    if not any(m["role"] == "assistant" for m in body):
        raise DataError(f"{where}: the conversation has no assistant turn (nothing to train on)")
    if body[0]["role"] != "user":
        raise DataError(f"{where}: the conversation starts with the assistant; a user turn must come first")
    if messages[-1]["role"] != "assistant":
        raise DataError(f"{where}: the conversation ends with a {messages[-1]['role']} turn; the last turn must be "
                        "the assistant's (the target)")
    for i, m in enumerate(messages):
        if m["role"] == "assistant" and not m["content"].strip():
            raise DataError(f"{where}: assistant turn {i} is empty")
    return messages
