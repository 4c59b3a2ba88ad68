"""`promot world pretrain`: how the shipped world model was made, re-runnable from scratch.

Pretraining text = k-shot episodes of random ICL tasks (never the fine-tuning targets). Loss is on the answers
(and the separator after each), which is what makes in-context learning the cheapest way to lower it: the later
answers of an episode are predictable only from its earlier demonstrations. HF Trainer does the loop.
"""
from __future__ import annotations

import json
import logging
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from promot.io import atomic_dir, check_replaceable
from promot.world.model import WorldModelSize, build_model
from promot.world.tasks import ICL_TASKS, WorldTask, episode, render
from promot.world.tokenizer import build_tokenizer

log = logging.getLogger(__name__)
INFO = "world.json"
"""Beside the model: pretraining settings, loss and k-shot accuracy; its presence marks a world model's folder."""


@dataclass(frozen=True)
class PretrainConfig:
    steps: int = 4000
    batch_size: int = 32
    lr: float = 3e-3
    warmup_steps: int = 200
    max_shots: int = 7
    seed: int = 0
    eval_items: int = 48
    """Query items per task for the k-shot accuracy printed (and stored in world.json) at the end."""


def episode_tokens(tokenizer, rng: random.Random, task: WorldTask, shots: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one episode; labels keep only each answer and the `;` / `</s>` that ends it."""
    ids, labels = [tokenizer.bos_token_id], [-100]
    examples = episode(rng, task, shots)
    for i, (x, y) in enumerate(examples):
        prompt = tokenizer.convert_tokens_to_ids(render(task, (x, y), with_answer=False).split())
        answer = tokenizer.convert_tokens_to_ids(y.split())
        end = tokenizer.eos_token_id if i == len(examples) - 1 else tokenizer.convert_tokens_to_ids(";")
        ids += prompt + answer + [end]
        labels += [-100] * len(prompt) + answer + [end]
    return ids, labels


class EpisodeDataset(torch.utils.data.Dataset):
    """Item i is a pure function of (seed, i): the same run always sees the same episodes, in the same order."""

    def __init__(self, tokenizer, size: int, seed: int, max_shots: int) -> None:
        self.tokenizer, self.size, self.seed, self.max_shots = tokenizer, size, seed, max_shots
        self.tasks = list(ICL_TASKS.values())

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        rng = random.Random(self.seed * 1_000_003 + i)
        ids, labels = episode_tokens(self.tokenizer, rng, rng.choice(self.tasks), rng.randint(0, self.max_shots))
        return {"input_ids": ids, "labels": labels}


def collate(batch: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(b["input_ids"]) for b in batch)
    out = {"input_ids": [], "labels": [], "attention_mask": []}
    for b in batch:
        n = width - len(b["input_ids"])
        out["input_ids"].append(b["input_ids"] + [pad_id] * n)
        out["labels"].append(b["labels"] + [-100] * n)
        out["attention_mask"].append([1] * len(b["input_ids"]) + [0] * n)
    return {k: torch.tensor(v) for k, v in out.items()}


@torch.no_grad()
def icl_accuracy(model, tokenizer, shots: int, items: int, seed: int = 1234, batch_size: int = 64) -> dict[str, float]:
    """Greedy k-shot accuracy (0-1) per ICL task on fresh episodes; what the pretraining log and test look at.
    Generation is promot's own batched greedy path, the one checkpoint selection uses."""
    from promot.data import Example, Tokenizing
    from promot.prompt.generate import generate_texts
    from promot.prompt import PromptedLM

    lm, tokenizing = PromptedLM(model, None), Tokenizing(tokenizer, False, tokenizer.model_max_length)
    rng = random.Random(seed)
    out = {}
    for task in ICL_TASKS.values():
        examples = []
        for _ in range(items):
            ex = episode(rng, task, shots)
            prompt = " ; ".join([*(render(task, e) for e in ex[:-1]), render(task, ex[-1], False)])
            examples.append(Example(prompt, ex[-1][1], task.name))
        texts = generate_texts(lm, tokenizing, examples, max_new_tokens=8, batch_size=batch_size)
        out[task.name] = sum(t.split(";")[0].strip() == ex.target for t, ex in zip(texts, examples)) / items
    return out


def pretrain(out_dir: str | Path, cfg: PretrainConfig = PretrainConfig(), size: WorldModelSize = WorldModelSize(),
             eval_shots: tuple[int, ...] = (0, 1, 4)) -> dict:
    """Pretrain the world model; write model + tokenizer + world.json (settings, loss, k-shot accuracy) atomically."""
    from transformers import Trainer, TrainingArguments

    check_replaceable(out_dir, INFO, "a world model")  # before minutes of training, not after
    torch.manual_seed(cfg.seed)
    tokenizer = build_tokenizer()
    model = build_model(len(tokenizer), size, cfg.seed)
    data = EpisodeDataset(tokenizer, cfg.steps * cfg.batch_size, cfg.seed, cfg.max_shots)
    with atomic_dir(out_dir) as tmp:
        args = TrainingArguments(
            output_dir=str(tmp / "trainer"), max_steps=cfg.steps, per_device_train_batch_size=cfg.batch_size,
            learning_rate=cfg.lr, lr_scheduler_type="cosine", warmup_steps=cfg.warmup_steps, weight_decay=0.01,
            logging_steps=max(1, cfg.steps // 20), save_strategy="no", report_to=[], use_cpu=True, seed=cfg.seed,
            dataloader_num_workers=0, remove_unused_columns=False,
        )
        trainer = Trainer(model=model, args=args, train_dataset=data,
                          data_collator=lambda b: collate(b, tokenizer.pad_token_id))
        result = trainer.train()
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        log.info("scoring %s-shot ICL accuracy on %d fresh episodes per task", "/".join(map(str, eval_shots)),
                 cfg.eval_items)
        accuracy = {k: icl_accuracy(model, tokenizer, k, cfg.eval_items) for k in eval_shots}
        info = {
            "pretrain": asdict(cfg), "size": asdict(size), "train_loss": losses,
            "seconds": round(result.metrics.get("train_runtime", 0.0), 1),
            "parameters": sum(p.numel() for p in model.parameters()),
            "icl_accuracy": {str(k): {"mean": sum(v.values()) / len(v), **v} for k, v in accuracy.items()},
        }
        shutil.rmtree(tmp / "trainer", ignore_errors=True)
        model.config.use_cache = True  # the Trainer turned it off for training; generation wants it
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / INFO).write_text(json.dumps(info, indent=1) + "\n")
    return info
