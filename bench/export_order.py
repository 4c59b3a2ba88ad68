"""Plain completions on an export whose tokenizer adds BOS: which token order answers as `promot generate --prompt`?

    python bench/export_order.py RUN EXPORT_DIR [--n 24] [--tokens 10]

Greedy continuations (token for token) of world-suite inputs through plain transformers on the exported directory,
against `load_run(RUN).generate(prompt=True)` (training's order: prompt + BOS + text), for
  prefix + text             (served by transformers serve /v1/completions: BOS + prompt + text)
  prefix + <s> + text       (BOS + prompt + BOS + text)
  the same, special tokens off (prompt + BOS + text: vLLM completions with add_special_tokens=false)
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

from promot.evaluate.suites import SUITES_DIR
from promot.runs import load_run
from promot.serving import PREFIXES_FILE


def inputs(n: int) -> list[str]:
    data = SUITES_DIR / "world" / "data"
    out = []
    tasks = ["true_false", "copy", "parity", "true_false", "reverse", "has_vowel"]
    for i, task in enumerate((tasks * (n // len(tasks) + 1))[:n]):
        rows = [json.loads(x) for x in (data / f"{task}.test.jsonl").read_text().splitlines()]
        demo = [json.loads(x) for x in (data / f"{task}.train.jsonl").read_text().splitlines()][i]
        out.append(rows[i]["question"] if i % 2 else f"{demo['question']} {demo['answer']} ; {rows[i]['question']}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("export_dir")
    ap.add_argument("--n", type=int, default=24)
    ap.add_argument("--tokens", type=int, default=10)
    args = ap.parse_args()
    run = load_run(args.run)
    model = AutoModelForCausalLM.from_pretrained(args.export_dir).eval()
    tok = AutoTokenizer.from_pretrained(args.export_dir)
    (_, entry), = json.loads((Path(args.export_dir) / PREFIXES_FILE).read_text())["tasks"].items()
    texts = inputs(args.n)
    ref = [run.generate([t], prompt=True, max_new_tokens=args.tokens)[0] for t in texts]

    def gen(text: str, special: bool) -> str:
        ids = tok(text, return_tensors="pt", add_special_tokens=special)["input_ids"]
        out = model.generate(ids, max_new_tokens=args.tokens, do_sample=False)[0, ids.shape[1]:]
        return tok.decode(out, skip_special_tokens=True)

    for label, prefix, special in (("prefix + text (BOS + prompt + text)", entry["prefix"], True),
                                   ("prefix + <s> + text (BOS + prompt + BOS + text)",
                                    entry["prefix_without_special_tokens"], True),
                                   ("same, special tokens off (prompt + BOS + text)",
                                    entry["prefix_without_special_tokens"], False)):
        same = sum(gen(prefix + t, special) == r for t, r in zip(texts, ref))
        print(f"{label}: {same}/{len(texts)} equal to promot generate --prompt")


if __name__ == "__main__":
    main()
