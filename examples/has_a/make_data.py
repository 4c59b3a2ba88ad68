"""Writes train/validation JSONL for an RTE-style True/False task: "X has a A, a B and a C. question: X has a D."

Deterministic (seeded); re-run to regenerate: python examples/has_a/make_data.py
"""
from __future__ import annotations

import json
import random
from pathlib import Path

OWNERS = ["Anna", "Ben", "Carla", "David", "Emma", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam",
          "Maya", "Noah", "Olga", "Pablo", "Rosa", "Sam", "Tara", "Victor", "the farm", "the school", "the hotel",
          "the museum", "the ship", "the library", "the village", "the office"]
THINGS = ["dog", "cat", "bike", "car", "piano", "garden", "lamp", "boat", "clock", "horse", "guitar", "camera",
          "kettle", "ladder", "map", "radio", "sofa", "tent", "violin", "wagon", "chair", "drum", "fridge", "hammer",
          "kite", "mirror", "oven", "pencil", "rug", "scarf", "table", "umbrella"]


def an(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def record(rng: random.Random) -> dict:
    owner = rng.choice(OWNERS)
    owner = owner[0].upper() + owner[1:]
    a, b, c, other = rng.sample(THINGS, 4)
    asked = rng.choice([a, b, c]) if rng.random() < 0.5 else other
    return {"premise": f"{owner} has {an(a)}, {an(b)} and {an(c)}.", "hypothesis": f"{owner} has {an(asked)}.",
            "label": "True" if asked in (a, b, c) else "False"}


def main() -> None:
    here = Path(__file__).parent
    for name, n, seed in (("train", 512, 0), ("validation", 64, 1)):
        rng = random.Random(seed)
        rows = [record(rng) for _ in range(n)]
        (here / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
