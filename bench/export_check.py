"""What exporting a prompt as vocabulary costs on a world run (numbers for docs/RESULTS.md, "Serving").

    python bench/export_check.py RUN [--limit 40]

1. Tied rows: had the export only appended the prompt rows to the tied embedding table, would an added token reach
   top-1 of the logits? Counted at every position of every world-suite item (each task 0- and 1-shot), without the
   prompt and with it.
(The token order needs no measurement since the prompt goes after BOS: served completions are training's sequence,
tested in tests/test_export.py.)
"""
from __future__ import annotations

import argparse
import json
import random

import torch

from promot.evaluate.suites import SUITES_DIR
from promot.runs import load_run


def items(task_file, train_file, limit: int, shots: int) -> list[tuple[str, str]]:
    test = [json.loads(x) for x in task_file.read_text().splitlines()][:limit]
    train = [json.loads(x) for x in train_file.read_text().splitlines()] if train_file.exists() else []
    rng = random.Random(0)
    out = []
    for doc in test:
        demos = rng.sample(train, min(shots, len(train)))
        out.append((" ; ".join([*(f"{d['question']} {d['answer']}" for d in demos), doc["question"]]), doc["answer"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--limit", type=int, default=40)
    args = ap.parse_args()
    run = load_run(args.run)
    lm, tok = run.lm, run.tokenizer
    model = lm.model
    emb = model.get_input_embeddings().weight
    prompt = lm.prompt.detach()
    tied_head = torch.cat([emb, prompt])  # what a tied export would score
    v = emb.shape[0]
    data = SUITES_DIR / "world" / "data"
    tasks = sorted({p.name.split(".")[0] for p in data.glob("*.test.jsonl")})
    top1 = {"bare": [0, 0], "prompt": [0, 0]}
    for task in tasks:
        for shots in (0, 1):
            for text, _ in items(data / f"{task}.test.jsonl", data / f"{task}.train.jsonl", args.limit, shots):
                ids = torch.tensor([tok(text)["input_ids"]])
                e = model.get_input_embeddings()(ids)
                for key, x in (("bare", e), ("prompt", lm.embed(ids, torch.ones_like(ids))[0])):
                    h = model.model(inputs_embeds=x).last_hidden_state[0, -ids.shape[1]:]  # text positions
                    hits = (h @ tied_head.T).argmax(-1) >= v
                    top1[key][0] += int(hits.sum())
                    top1[key][1] += hits.numel()
    print(json.dumps({"tied_top1_added": {k: {"hits": a, "positions": b} for k, (a, b) in top1.items()}}, indent=1))


if __name__ == "__main__":
    main()
