"""Examples → token ids → padded batches. Loss falls on target tokens only (everything else is -100).

Causal LM: input_ids = input + delimiter·target + EOS, labels = -100 over the input. Seq2seq: the encoder reads the
input, labels are the target. The budget `max_length` never cuts a target: an over-long input loses its oldest
tokens (`truncation: left`) or is refused (`truncation: error`); an over-long target is always an error.
A conversation is the chat template's rendering instead, loss on the assistant turns (`chat.py`).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from promot.data.templates import Example
from promot.errors import DataError

log = logging.getLogger(__name__)

IGNORE = -100


@dataclass
class Tokenizing:
    tokenizer: object
    seq2seq: bool
    max_length: int
    truncation: str = "left"
    delimiter: str = " "
    special_in_text: bool = False
    """True when the text already carries special tokens (chat template): don't add BOS again."""
    train_on: str = "all"
    """Conversations: loss on `all` assistant turns or the `last`."""

    @classmethod
    def for_data(cls, data, tokenizer, seq2seq: bool, chat: bool = False) -> Tokenizing:
        """How a data section (`data`, `tasks[].data`, `replay`) turns examples into tokens: training, selection and
        `load_run` alike. `chat`: the examples are in the chat template though the section did not ask for it
        (conversation records: `TaskData.chat`)."""
        chat = chat or data.chat_template
        return cls(tokenizer, seq2seq, data.max_length, data.truncation,
                   delimiter="" if chat else data.target_delimiter,
                   special_in_text=chat, train_on=data.train_on)

    @property
    def chat(self):
        """The tokenizer's chat template at this budget (built on first use: plain text never needs one)."""
        if getattr(self, "_chat", None) is None:
            from promot.data.chat import ChatTemplate

            self._chat = ChatTemplate(self.tokenizer, self.max_length, self.truncation, self.train_on)
        return self._chat

    def _conversation(self, ex: Example) -> list[dict]:
        if self.seq2seq:
            raise DataError(f"{ex.where}: conversations train decoder-only models (this one is encoder-decoder)")
        return [*ex.messages, {"role": "assistant", "content": ex.target}]

    def stop_ids(self) -> list[int] | None:
        """Where generation ends: EOS, and a chat template's own end of turn (Gemma's `<end_of_turn>` is not EOS)."""
        eos = self.tokenizer.eos_token_id
        ids = [] if eos is None else [eos]
        if getattr(self, "_chat", None) is not None and (eot := self._chat.end_of_turn()) is not None:
            ids.append(eot)
        return list(dict.fromkeys(ids)) or None

    def input_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=not self.special_in_text or self.seq2seq)["input_ids"]

    def target_ids(self, target: str) -> list[int]:
        if self.seq2seq:
            return self.tokenizer(target)["input_ids"]  # T5 tokenizers append </s>
        ids = self.tokenizer(self.delimiter + target, add_special_tokens=False)["input_ids"]
        eos = self.tokenizer.eos_token_id
        return ids + ([eos] if eos is not None else [])

    def fit(self, ids: list[int], room: int, where: str) -> tuple[list[int], bool]:
        """Cut `ids` to `room` tokens from the left, keeping a leading BOS; or refuse."""
        if len(ids) <= room:
            return ids, False
        if self.truncation == "error":
            raise DataError(f"{where}: input is {len(ids)} tokens, over the {room} left by data.max_length")
        bos = self.tokenizer.bos_token_id
        head = ids[:1] if bos is not None and ids and ids[0] == bos else []
        return head + ids[len(ids) - (room - len(head)) :], True

    def encode(self, ex: Example) -> dict[str, list[int]]:
        if ex.messages is not None:
            return self.chat.encode(self._conversation(ex), ex.where)
        target = self.target_ids(ex.target)
        room = self.max_length if self.seq2seq else self.max_length - len(target)
        if len(target) >= self.max_length or room < 2:
            raise DataError(
                f"{ex.where}: target is {len(target)} tokens, too long for data.max_length={self.max_length}"
            )
        inp, cut = self.fit(self.input_ids(ex.input), room, ex.where)
        if self.seq2seq:
            return {"input_ids": inp, "labels": target, "truncated": cut}
        return {"input_ids": inp + target, "labels": [IGNORE] * len(inp) + target, "truncated": cut}

    def encode_all(self, examples: list[Example]) -> list[dict[str, list[int]]]:
        rows = [self.encode(ex) for ex in examples]
        cut = sum(r.pop("truncated") for r in rows)
        if cut:
            log.warning("%d of %d inputs were longer than data.max_length and lost their oldest tokens", cut, len(rows))
        return rows

    def prompt_only(self, ex: Example) -> list[int]:
        """The input ids a generator starts from (same truncation as training, target room kept)."""
        if ex.messages is not None:
            self._conversation(ex)
            return self.chat.prompt_ids(ex.messages, ex.target, ex.where)
        room = self.max_length - (0 if self.seq2seq else len(self.target_ids(ex.target)))
        return self.fit(self.input_ids(ex.input), max(room, 2), ex.where)[0]


def pad(seqs: list[list[int]], value: int, side: str = "right") -> torch.Tensor:
    width = max(len(s) for s in seqs)
    rows = [([value] * (width - len(s)) + s) if side == "left" else (s + [value] * (width - len(s))) for s in seqs]
    return torch.tensor(rows, dtype=torch.long)


@dataclass
class Collator:
    """Right-pads a list of encoded rows into input_ids / attention_mask / labels tensors."""

    pad_id: int

    def __call__(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        ids = [r["input_ids"] for r in rows]
        batch = {
            "input_ids": pad(ids, self.pad_id),
            "attention_mask": pad([[1] * len(s) for s in ids], 0),
            "labels": pad([r["labels"] for r in rows], IGNORE),
        }
        if "task_id" in rows[0]:  # multi-task rows: which prompt of the bank each example gets
            batch["task_ids"] = torch.tensor([r["task_id"] for r in rows])
        if "prompt_mask" in rows[0]:  # replay rows: which examples get the prompt (replayed data goes bare)
            batch["prompt_mask"] = torch.tensor([r["prompt_mask"] for r in rows])
        return batch
