"""Write conversations.{train,validation}.jsonl: the has_a task (examples/has_a) as multi-turn chats in TRL's
conversational `messages` shape — a system prompt, one earlier exchange (another training item, answered) and the
item itself as the final user turn, its label the final assistant turn. Deterministic; re-run to regenerate:

    python examples/chat/make_conversations.py
"""
from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "has_a"
SYSTEM = "You check statements about what someone has. Answer with one word: True or False."


def turns(item: dict) -> list[dict]:
    return [{"role": "user", "content": f"{item['premise']} {item['hypothesis']}"},
            {"role": "assistant", "content": item["label"]}]


def main() -> None:
    train = [json.loads(line) for line in (SOURCE / "train.jsonl").read_text().splitlines() if line.strip()]
    for split in ("train", "validation"):
        items = [json.loads(line) for line in (SOURCE / f"{split}.jsonl").read_text().splitlines() if line.strip()]
        rng = random.Random(0 if split == "train" else 1)
        rows = []
        for item in items:
            earlier = rng.choice([t for t in train if t is not item])  # never the item itself
            messages = [{"role": "system", "content": SYSTEM}, *turns(earlier), *turns(item)]
            rows.append(json.dumps({"messages": messages}))
        (HERE / f"conversations.{split}.jsonl").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
