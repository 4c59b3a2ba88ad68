"""What ProMoT's stages cost next to plain HF Trainer full fine-tuning, on the same model, batch and schedule.

Prints, from one run (each measurement in its own subprocess, so peak memory is per run):
  * stage-2 throughput ÷ plain HF Trainer full fine-tuning throughput (text tokens/s; goal >= 0.97), and the
    same per *position* (text + P virtual tokens), which isolates promot's overhead from the prompt's extra compute;
  * stage-1 peak memory ÷ full fine-tuning peak memory (goal <= 0.55), against AdamW and Adafactor anchors.

    python bench/stage_cost.py                            # SmolLM2-135M-Instruct (from its GGUF package), CPU
    python bench/stage_cost.py --model tiny --steps 20    # a random 4-layer Llama, seconds
    python bench/stage_cost.py --seq-len 512 --prompt-length 20 --bf16

Peak memory is the process's peak RSS on CPU and torch.cuda.max_memory_allocated on GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = ("hf-adamw", "hf-adafactor", "stage2", "stage1", "stage1-gc")


def _model(name: str):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from promot.models import load_model

    if name != "tiny":
        loaded = load_model(name)
        return loaded.model, loaded.tokenizer
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=2048, hidden_size=256, intermediate_size=704, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048)

    class Tok:  # the bits of a tokenizer the loop touches
        pad_token_id, eos_token_id, bos_token_id = 0, 1, 2

        def save_pretrained(self, *a, **k):
            pass

    return LlamaForCausalLM(cfg), Tok()


def _rows(vocab: int, n: int, seq_len: int) -> list[dict]:
    import torch

    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(n):
        ids = torch.randint(3, vocab, (seq_len,), generator=g).tolist()
        half = seq_len // 2  # loss on the second half, like input → target
        rows.append({"input_ids": ids, "labels": [-100] * half + ids[half:]})
    return rows


class StepTimer:
    def __init__(self) -> None:
        self.times: list[float] = []
        self._t = 0.0

    def on_step_begin(self, *a, **k):
        self._t = time.perf_counter()

    def on_step_end(self, *a, **k):
        self.times.append(time.perf_counter() - self._t)


def worker(args: argparse.Namespace) -> dict:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from promot.config import load_config
    from promot.data import Collator
    from promot.training import METHODS
    from promot.training.loop import StageContext
    from promot.training.stage1_prompt_tuning import train_prompt
    from promot.precision import resolve_bf16
    from promot.training.stage2_model_tuning import train_model

    torch.set_num_threads(args.threads)
    model, tok = _model(args.model)
    rows = _rows(model.config.vocab_size, args.batch_size * (args.steps + 2), args.seq_len)
    timer = type("Timer", (TrainerCallback,), {})()
    st = StepTimer()
    timer.on_step_begin, timer.on_step_end = st.on_step_begin, st.on_step_end
    cuda = torch.cuda.is_available()
    if cuda:
        model.cuda()
    optimizer = "adamw" if args.run == "hf-adamw" else args.optimizer
    stage = {"steps": args.steps, "lr": 1e-5, "optimizer": optimizer, "batch_size": args.batch_size,
             "eval_every": 0, "eval_on_start": False}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config({"model": {"name": args.model}, "data": {"train": "unused"}, "bf16": args.bf16,
                           "stage1": {**stage, "lr": 0.3, "gradient_checkpointing": args.run == "stage1-gc"},
                           "stage2": stage, "output_dir": tmp})
        if args.run.startswith("hf-"):
            targs = TrainingArguments(
                output_dir=tmp, max_steps=args.steps, per_device_train_batch_size=args.batch_size,
                learning_rate=1e-5, optim="adamw_torch" if optimizer == "adamw" else "adafactor",
                lr_scheduler_type="constant_with_warmup", bf16=resolve_bf16(args.bf16), use_cpu=not cuda, report_to="none",
                save_strategy="no", logging_steps=10_000, remove_unused_columns=False, seed=0, disable_tqdm=True)
            Trainer(model=model, args=targs, train_dataset=rows, data_collator=Collator(tok.pad_token_id),
                    callbacks=[timer]).train()
        else:
            ctx = StageContext(cfg, tok, None, rows, [], Path(tmp), callbacks=[timer])
            prompt = torch.randn(args.prompt_length, model.config.hidden_size) * 0.02
            if args.run.startswith("stage1"):
                train_prompt(model, prompt, ctx)
            else:
                train_model(model, prompt, METHODS["promot"], ctx)
    step = statistics.median(st.times[2:] or st.times)
    p = args.prompt_length if args.run.startswith("stage") else 0
    tokens = args.batch_size * args.seq_len
    peak = (torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"run": args.run, "median_step_s": step, "tokens_per_s": tokens / step,
            "positions_per_s": args.batch_size * (args.seq_len + p) / step, "peak_mb": peak / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct", help="model name/alias, or 'tiny'")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--prompt-length", type=int, default=20)
    ap.add_argument("--optimizer", default="adafactor", choices=["adafactor", "adamw"],
                    help="optimizer for stage 1 / stage 2 (the hf-* anchors use their own)")
    ap.add_argument("--bf16", action=argparse.BooleanOptionalAction, default="auto",
                    help="bf16 autocast (default auto: where this machine runs bf16 natively)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=1, help="alternate the runs this many times; medians reported")
    ap.add_argument("--run", choices=RUNS, help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true", help="print the raw measurements as JSON too")
    args = ap.parse_args()
    if args.run:
        print(json.dumps(worker(args)))
        return
    results: dict[str, list[dict]] = {r: [] for r in RUNS}
    argv = [a for a in sys.argv[1:] if a != "--json"]
    for _ in range(args.repeats):
        for run in RUNS:
            out = subprocess.run([sys.executable, __file__, *argv, "--run", run], capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"{run} failed:\n{out.stderr[-3000:]}")
            results[run].append(json.loads(out.stdout.strip().splitlines()[-1]))

    def med(run: str, key: str) -> float:
        return statistics.median(r[key] for r in results[run])

    anchor = f"hf-{args.optimizer}"
    print(f"model={args.model} batch={args.batch_size}x{args.seq_len} P={args.prompt_length} bf16={args.bf16} "
          f"steps={args.steps} repeats={args.repeats} stage optimizer={args.optimizer}")
    print(f"{'run':<14}{'step s':>9}{'tok/s':>10}{'pos/s':>10}{'peak MB':>10}")
    for run in RUNS:
        print(f"{run:<14}{med(run, 'median_step_s'):>9.3f}{med(run, 'tokens_per_s'):>10.0f}"
              f"{med(run, 'positions_per_s'):>10.0f}{med(run, 'peak_mb'):>10.0f}")
    print(f"stage-2 tokens/s ÷ HF Trainer full FT ({anchor}): {med('stage2', 'tokens_per_s') / med(anchor, 'tokens_per_s'):.3f}"
          f"  (per position incl. the prompt: {med('stage2', 'positions_per_s') / med(anchor, 'positions_per_s'):.3f};"
          f" text/(text+P) = {args.seq_len / (args.seq_len + args.prompt_length):.3f})")
    for s1 in ("stage1", "stage1-gc"):
        for a in ("hf-adamw", "hf-adafactor"):
            print(f"{s1} peak memory ÷ full FT peak memory ({a}): {med(s1, 'peak_mb') / med(a, 'peak_mb'):.3f}")
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
