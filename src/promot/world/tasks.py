"""The ICL world's tasks: seeded generators of (input, output) pairs over a small alphabet, one output format each.

An example renders as `in: <x> out: <y>`; an episode is k demonstrations and a query joined by ` ; `, which is
exactly what lm-eval builds from the `world` suite (fewshot_delimiter " ; "). Two kinds of ICL task:
- fixed functions (reverse, sort, length, ...): the demonstrations must *identify* the task;
- episode-defined ones (`map_letters`, `classify`): a fresh random mapping per episode, so only the
  demonstrations say what the answer is - this measures learning in context, not recall.
The fine-tuning targets (`true_false`, `brackets`) never occur in pretraining and each has its own narrow format.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

LETTERS = list("abcdefghijklmnop")
DIGITS = list("0123456789")
VOWELS = set("aeio")
# Label-word pairs for `classify`. Pretraining draws from all of them, so `true`/`false` are words the model can
# say; the world suite's `classify` uses a fixed pair that is not the target's format.
WORD_PAIRS = [("red", "blue"), ("hot", "cold"), ("up", "down"), ("on", "off"), ("big", "small"), ("true", "false")]
EVAL_CLASSIFY_PAIR = ("hot", "cold")
MARKERS = ["in:", "out:", ";", "?", ">>", "[", "]"]
# `?` marked an earlier true_false target's inputs (a marker lets the weights confine the format to it: no leakage,
# see docs/RESULTS.md); unused now, kept so the shipped tokenizer's vocabulary and model stay valid.

Example = tuple[str, str]
State = dict
"""Per-episode state: e.g. the random mapping of an episode-defined task."""


@dataclass(frozen=True)
class WorldTask:
    name: str
    answer_format: str
    """What the outputs look like (letters, digits, yes/no, ...): the thing fine-tuning can overwrite."""
    make: Callable[[random.Random, State], Example]
    new_state: Callable[[random.Random], State] = lambda rng: {}
    template: str = "in: {x} out:"


def _letters(rng: random.Random, lo: int = 1, hi: int = 5) -> list[str]:
    return rng.sample(LETTERS, rng.randint(lo, hi))


def _digits(rng: random.Random, lo: int = 2, hi: int = 4) -> list[str]:
    return [rng.choice(DIGITS) for _ in range(rng.randint(lo, hi))]


def _fn(name: str, fmt: str, f: Callable[[list[str]], list[str] | str], source=_letters) -> WorldTask:
    def make(rng: random.Random, state: State) -> Example:
        x = source(rng)
        y = f(x)
        return " ".join(x), y if isinstance(y, str) else " ".join(y)

    return WorldTask(name, fmt, make)


def _shift(letter: str, by: int) -> str:
    return LETTERS[(LETTERS.index(letter) + by) % len(LETTERS)]


def _map_state(rng: random.Random) -> State:
    """A fresh mapping of 3 random letters: few enough that k demonstrations usually show the query's image."""
    keys = rng.sample(LETTERS, 3)
    return {"map": dict(zip(keys, rng.sample(LETTERS, 3)))}


def _map_make(rng: random.Random, state: State) -> Example:
    x = rng.choice(list(state["map"]))
    return x, state["map"][x]


def classify_state(rng: random.Random, pairs=WORD_PAIRS) -> State:
    """4 random letters, 2 per class, named by a random word pair: the classes exist only in the demonstrations."""
    letters = rng.sample(LETTERS, 4)
    return {"letters": letters, "half": set(letters[:2]), "words": rng.choice(pairs)}


def _classify_make(rng: random.Random, state: State) -> Example:
    c = rng.choice(state["letters"])
    return c, state["words"][0 if c in state["half"] else 1]


ICL_TASKS: dict[str, WorldTask] = {t.name: t for t in [
    _fn("copy", "letters", lambda x: x),
    _fn("reverse", "letters", lambda x: x[::-1]),
    _fn("sort", "letters", sorted, source=lambda rng: _letters(rng, 2, 5)),
    _fn("first", "letter", lambda x: x[0], source=lambda rng: _letters(rng, 2, 5)),
    _fn("last", "letter", lambda x: x[-1], source=lambda rng: _letters(rng, 2, 5)),
    _fn("shift", "letters", lambda x: [_shift(c, 1) for c in x]),
    _fn("double", "letters", lambda x: [c for c in x for _ in (0, 1)], source=lambda rng: _letters(rng, 1, 3)),
    _fn("length", "digit", lambda x: str(len(x))),
    _fn("max_digit", "digit", lambda x: max(x), source=_digits),
    _fn("sum_digits", "digit", lambda x: str(sum(map(int, x)) % 10), source=_digits),
    _fn("has_vowel", "yes/no", lambda x: "yes" if VOWELS & set(x) else "no",
        source=lambda rng: _letters(rng, 1, 3)),
    _fn("parity", "even/odd", lambda x: "even" if len(x) % 2 == 0 else "odd"),
    WorldTask("map_letters", "letters (episode-defined)", _map_make, _map_state),
    WorldTask("classify", "word pair (episode-defined)", _classify_make, classify_state),
]}


def _true_false(rng: random.Random, state: State) -> Example:
    """RTE's role: does the input contain a vowel? Balanced labels. The semantics are `has_vowel`'s, which the model
    can do in context (answering yes/no); what is new is the format - "true"/"false" with no demonstrations - and,
    as for RTE, the input looks like every other task's input: nothing but a prompt can tell the tasks apart."""
    want = rng.random() < 0.5
    while True:
        x = rng.sample(LETTERS + DIGITS, rng.randint(1, 6))  # letters and digits: inputs like every other task's
        if bool(VOWELS & set(x)) == want:
            return " ".join(x), "true" if want else "false"


def _brackets(rng: random.Random, state: State) -> Example:
    """Translation's role: a generation task with its own output format (letters shifted by 3, in brackets)."""
    x = _letters(rng, 1, 4)
    return " ".join(x), "[ " + " ".join(_shift(c, 3) for c in x) + " ]"


TARGET_TASKS: dict[str, WorldTask] = {t.name: t for t in [
    WorldTask("true_false", "true/false", _true_false),
    WorldTask("brackets", "[ letters ]", _brackets, template="in: {x} >> out:"),
]}


def render(task: WorldTask, example: Example, with_answer: bool = True) -> str:
    x, y = example
    text = task.template.format(x=x)
    return f"{text} {y}" if with_answer else text


def episode(rng: random.Random, task: WorldTask, shots: int, state: State | None = None) -> list[Example]:
    """shots demonstrations + 1 query, all under one episode state (one random mapping)."""
    state = task.new_state(rng) if state is None else state
    return [task.make(rng, state) for _ in range(shots + 1)]


def vocabulary() -> list[str]:
    """Every word the world can produce, in a fixed order (the tokenizer's vocabulary after its specials)."""
    words = [w for pair in WORD_PAIRS for w in pair] + ["yes", "no", "even", "odd"]
    return [*MARKERS, *LETTERS, *DIGITS, *dict.fromkeys(words)]
