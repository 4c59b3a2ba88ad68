"""Conversations → token ids and labels, rendered exactly as at inference by the tokenizer's own chat template.

The ids are the template's rendering of the whole conversation (what `apply_chat_template` gives); the loss falls on
the assistant turns (all, or the last) including the template's own end-of-turn token, never on what follows it.
Where the template marks assistant text with `{% generation %}`, transformers' `return_assistant_tokens_mask` says
which tokens those are. Elsewhere (SmolLM2's and Gemma's templates have no markers) each assistant turn is found by
rendering the conversation up to it: the prefix with the generation prompt ends where the turn starts, the prefix
with the turn ends where it ends. Both prefixes must begin the full rendering token for token, or the template is
refused (it renders earlier turns differently once later ones follow, so no mask can be trusted).

Too long: `truncation: error` refuses; `left` drops whole earlier exchanges (after any system turns), never the
final assistant turn.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from promot.errors import DataError

IGNORE = -100
_GENERATION = re.compile(r"{%-?\s*generation\s*-?%}")


def _plain(messages) -> list[dict]:
    """What the template sees: role and content (promot's own `train` flag stays out)."""
    return [{"role": m["role"], "content": m["content"]} for m in messages]


@dataclass
class ChatTemplate:
    tokenizer: object
    max_length: int
    truncation: str = "left"
    train_on: str = "all"
    _eot: list = field(default_factory=list)

    def __post_init__(self) -> None:
        if not getattr(self.tokenizer, "chat_template", None):
            raise DataError("the tokenizer has no chat template, which conversations and data.chat_template need "
                            "(use a model whose tokenizer_config.json carries one)")
        self.marked = bool(_GENERATION.search(str(self.tokenizer.chat_template)))  # str: a dict of named templates

    def render(self, messages, where: str, generation_prompt: bool = False) -> str:
        from jinja2 import TemplateError

        try:
            return self.tokenizer.apply_chat_template(_plain(messages), tokenize=False,
                                                      add_generation_prompt=generation_prompt)
        except TemplateError as e:  # the template's raise_exception(...): say which rule it enforces
            raise DataError(f"{where}: the chat template refuses this conversation: {e}") from None

    def ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]  # as apply_chat_template(tokenize=True)

    def spans(self, messages, where: str) -> tuple[list[int], list[tuple[int, int]]]:
        """(ids of the whole conversation, [start, end) of every assistant turn, end of turn included)."""
        if self.marked:
            return self._marked_spans(messages, where)
        full = self.ids(self.render(messages, where))
        spans = []
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            start = self._prefix(self.render(messages[:i], where, generation_prompt=True), full, where, i)
            end = self._prefix(self.render(messages[: i + 1], where), full, where, i)
            while end > start and self._trailing(full[end - 1]):
                end -= 1  # what the template writes after the end of turn (SmolLM2's and Gemma's "\n")
            spans.append((start, end))
        return full, spans

    def _prefix(self, text: str, full: list[int], where: str, turn: int) -> int:
        ids = self.ids(text)
        if full[: len(ids)] != ids:
            raise DataError(f"{where}: the chat template is not prefix-stable at turn {turn} (the conversation "
                            "rendered up to that turn does not begin the whole rendering, token for token), so the "
                            "assistant's tokens cannot be told apart; add {% generation %} markers to the template")
        return len(ids)

    def _trailing(self, token: int) -> bool:
        """A token after the end of turn: plain whitespace, not a special token."""
        if token in self.tokenizer.all_special_ids:
            return False
        return not self.tokenizer.decode([token]).strip()

    def _marked_spans(self, messages, where: str):
        from jinja2 import TemplateError

        try:
            out = self.tokenizer.apply_chat_template(_plain(messages), tokenize=True, return_dict=True,
                                                     return_assistant_tokens_mask=True)
        except TemplateError as e:
            raise DataError(f"{where}: the chat template refuses this conversation: {e}") from None
        ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
        spans, start = [], None
        for i, flag in enumerate([*mask, 0]):
            if flag and start is None:
                start = i
            elif not flag and start is not None:
                spans.append((start, i))
                start = None
        if len(spans) != sum(m["role"] == "assistant" for m in messages):
            raise DataError(f"{where}: the chat template's {{% generation %}} markers cover {len(spans)} spans for "
                            f"{sum(m['role'] == 'assistant' for m in messages)} assistant turns")
        return ids, spans

    def encode(self, messages, where: str) -> dict:
        """input_ids and labels (assistant turns only; `train_on: last` the final one; turns with train=False,
        the `shots` exemplars, never), the conversation cut to `max_length` by whole exchanges."""
        messages, cut = self.fit(messages, where)
        ids, spans = self.spans(messages, where)
        turns = [m for m in messages if m["role"] == "assistant"]
        labels = [IGNORE] * len(ids)
        for k, ((start, end), m) in enumerate(zip(spans, turns)):
            if m.get("train", True) is False or (self.train_on == "last" and k < len(turns) - 1):
                continue
            labels[start:end] = ids[start:end]
        return {"input_ids": ids, "labels": labels, "truncated": cut}

    def fit(self, messages, where: str) -> tuple[list, bool]:
        """The conversation within `max_length`: whole earlier exchanges dropped (truncation: left) or refused."""
        messages, cut = list(messages), False
        while (n := len(self.ids(self.render(messages, where)))) > self.max_length:
            if self.truncation == "error":
                raise DataError(f"{where}: the conversation is {n} tokens, over data.max_length={self.max_length}")
            system = [m for m in messages[: next(i for i, m in enumerate(messages) if m["role"] != "system")]]
            body = messages[len(system):]
            nxt = next((i for i, m in enumerate(body) if i > 0 and m["role"] == "user"), None)
            if nxt is None:
                raise DataError(f"{where}: the final exchange alone is {n} tokens, over data.max_length="
                                f"{self.max_length} (the final assistant turn is never cut)")
            messages, cut = system + body[nxt:], True
        return messages, cut

    def prompt_ids(self, context, target: str, where: str) -> list[int]:
        """What a generator starts from: the conversation before the final assistant turn, with the generation
        prompt, cut as training cuts it."""
        kept, _ = self.fit([*context, {"role": "assistant", "content": target or "x"}], where)
        return self.ids(self.render(kept[:-1], where, generation_prompt=True))

    def end_of_turn(self) -> int | None:
        """The template's own end-of-turn token (SmolLM2 `<|im_end|>`, Gemma `<end_of_turn>`): the last token of
        an assistant turn, when it is a special token. Generation stops there."""
        if not self._eot:
            probe = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
            try:
                ids, spans = self.spans(probe, "<probe>")
                last = ids[spans[-1][1] - 1] if spans and spans[-1][1] > spans[-1][0] else None
            except DataError:
                last = None
            self._eot.append(last if last in self.tokenizer.all_special_ids
                             or last in getattr(self.tokenizer, "added_tokens_decoder", {}) else None)
        return self._eot[0]
