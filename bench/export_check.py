"""What exporting a prompt as vocabulary costs on a world run (numbers for docs/RESULTS.md, "Serving").

    python bench/export_check.py RUN [--limit 40]

1. Tied rows: had the export only appended the prompt rows to the tied embedding table, would an added token reach
   top-1 of the logits? Counted at every position of every world-suite item (each task 0- and 1-shot), without the
   prompt and with it.
2. BOS order: a tokenizer that adds BOS itself serves `prefix + text` on plain completions as BOS + prompt + text;
   training saw prompt + BOS + text. Greedy answers (up to ';', 10 tokens) under both orders, per task.
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


@torch.no_grad()
def greedy(model, embeds: torch.Tensor, eos: int, stop: int | None, n: int = 10) -> list[int]:
    out, past = [], None
    x = embeds
    for _ in range(n):
        o = model(inputs_embeds=x, past_key_values=past, use_cache=True)
        past = o.past_key_values
        t = int(o.logits[0, -1].argmax())
        if t in (eos, stop):
            break
        out.append(t)
        x = model.get_input_embeddings()(torch.tensor([[t]]))
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
    stop = tok.convert_tokens_to_ids(";")
    top1 = {"bare": [0, 0], "prompt": [0, 0]}
    agree = {}
    for task in tasks:
        same = total = 0
        for shots in (0, 1):
            for text, _ in items(data / f"{task}.test.jsonl", data / f"{task}.train.jsonl", args.limit, shots):
                ids = torch.tensor([tok(text)["input_ids"]])
                e = model.get_input_embeddings()(ids)
                for key, x in (("bare", e), ("prompt", torch.cat([prompt[None], e], 1))):
                    h = model.model(inputs_embeds=x).last_hidden_state[0, -ids.shape[1]:]  # text positions
                    hits = (h @ tied_head.T).argmax(-1) >= v
                    top1[key][0] += int(hits.sum())
                    top1[key][1] += hits.numel()
                if shots == 0:
                    trained = greedy(model, torch.cat([prompt[None], e], 1), tok.eos_token_id, stop)
                    served = greedy(model, torch.cat([e[:, :1], prompt[None], e[:, 1:]], 1), tok.eos_token_id, stop)
                    same += trained == served
                    total += 1
        agree[task] = (same, total)
    print(json.dumps({"tied_top1_added": {k: {"hits": a, "positions": b} for k, (a, b) in top1.items()},
                      "bos_order_same_greedy_answer": {t: f"{s}/{n}" for t, (s, n) in agree.items()},
                      "bos_order_total": f"{sum(s for s, _ in agree.values())}/{sum(n for _, n in agree.values())}"},
                     indent=1))


if __name__ == "__main__":
    main()
