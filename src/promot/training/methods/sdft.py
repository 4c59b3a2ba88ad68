"""Self-distillation (method sdft; Shenfeld et al., 2026): stage 2 replaces cross-entropy on the dataset's answers
with on-policy distillation. Each step the student samples its own answer to each training input; the teacher, the
same model with the example's own demonstration (input and reference answer) in its context, scores that answer;
the loss is TRL's top-k divergence between the two, token by token. The student never trains on the reference text
itself, so it learns the task in words it already uses. Its settings and their checks: promot/methods/sdft.py.

TRL's `SDFTTrainer` is a Trainer of its own (its own data pipeline of text prompts, rollout buffers and teacher
sync), so it cannot be the objective of promot's loop, whose Trainer owns selection, the guard, checkpoints and
resume; the objective here calls TRL's loss (`compute_topk_self_distillation_loss`) on rollouts built from
promot's own batches."""
from __future__ import annotations

import copy
import warnings

import torch

from promot.data import IGNORE, pad
from promot.training.loop import StageHooks
from promot.training.methods.base import Addon


def _left_pad(rows: list[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows left-padded for generation, and their attention mask (promot.data.pad on each)."""
    return pad([r.tolist() for r in rows], pad_id, "left"), pad([[1] * len(r) for r in rows], 0, "left")


def split_batch(batch: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each row's (input, reference answer): the tokens before its first target token, and its target span (a row
    without one: all input, no answer)."""
    out = []
    for ids, mask, labels in zip(batch["input_ids"], batch["attention_mask"], batch["labels"]):
        ids, labels = ids[mask.bool()], labels[mask.bool()]
        targets = (labels != IGNORE).nonzero().flatten()
        first, last = (int(targets[0]), int(targets[-1]) + 1) if len(targets) else (len(ids), len(ids))
        out.append((ids[:first], ids[first:last]))
    return out


def teacher_context(prompt: torch.Tensor, answer: torch.Tensor, separator: torch.Tensor, bos_id: int | None,
                    eos_ids: set[int]) -> torch.Tensor:
    """The teacher's input: the example with its answer (the demonstration), the separator, the example again."""
    while len(answer) > 1 and int(answer[-1]) in eos_ids:
        answer = answer[:-1]
    again = prompt[1:] if bos_id is not None and len(prompt) > 1 and prompt[0] == bos_id else prompt
    return torch.cat([prompt, answer, separator.to(prompt.dtype), again])


def completion_mask(completion: torch.Tensor, eos_ids: set[int]) -> torch.Tensor:
    """1 up to and including each row's first end-of-sequence token, 0 after it."""
    stops = torch.isin(completion, torch.tensor(sorted(eos_ids), dtype=completion.dtype)) if eos_ids else \
        torch.zeros_like(completion, dtype=torch.bool)
    after = torch.cumsum(stops.long(), dim=1) - stops.long()  # stops strictly before each position
    return (after == 0).long()


def _completion_logits(model, context: list[torch.Tensor], completion: torch.Tensor, done: torch.Tensor,
                       pad_id: int, temperature: float) -> torch.Tensor:
    """The logits that predict each completion token after its row's context ([B, C, V])."""
    ids, mask = _left_pad(context, pad_id)
    device = completion.device
    logits = model(input_ids=torch.cat([ids.to(device), completion], 1),
                   attention_mask=torch.cat([mask.to(device), done], 1)).logits
    return logits[:, ids.shape[1] - 1: -1] / temperature


class SelfDistillation(Addon):
    name = "sdft"
    needs_whole_weights = True  # the base teacher is a whole copy; the rollouts need whole weights to generate

    def fits(self, cfg, model):
        if model.config.is_encoder_decoder:
            return [f"method {cfg.method}: self-distillation needs a decoder-only model, not "
                    f"{type(model).__name__}"]
        return []

    def before_stage2(self, lm, ctx):
        with warnings.catch_warnings():  # TRL marks its experimental package; the pinned version is the one tested
            warnings.filterwarnings("ignore", message=".*trl.experimental.*")
            from trl.experimental.sdft.loss_utils import compute_topk_self_distillation_loss
        c, tok = ctx.cfg.sdft, ctx.tokenizer
        from promot.prompt import PromptedLM

        base = copy.deepcopy(lm.model).requires_grad_(False) if c.teacher == "base" else None
        teacher = PromptedLM(base, None).eval() if base is not None else None  # positions from the mask, as lm's
        eos = lm.model.generation_config.eos_token_id if lm.model.generation_config else None
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else []) | \
            ({tok.eos_token_id} if tok.eos_token_id is not None else set())
        accum, pad_id, bos_id = ctx.cfg.stage2.grad_accum, tok.pad_token_id, tok.bos_token_id
        separator = torch.tensor(tok(c.separator, add_special_tokens=False)["input_ids"], dtype=torch.long)

        def objective(model, batch: dict) -> torch.Tensor:
            pairs = split_batch(batch)
            prompts, prompt_mask = _left_pad([p for p, _ in pairs], pad_id)
            device = batch["input_ids"].device
            budget = c.max_new_tokens or max(1, *(len(a) for _, a in pairs))
            training = lm.training
            lm.eval()  # sampling sees the weights, not dropout
            try:
                completion = lm.generate(prompts.to(device), prompt_mask.to(device), do_sample=True,
                                         temperature=c.temperature, top_k=0, top_p=1.0, max_new_tokens=budget,
                                         min_new_tokens=1, pad_token_id=pad_id)
            finally:
                lm.train(training)
            done = completion_mask(completion, eos_ids)
            completion = completion.masked_fill(done == 0, pad_id)
            student = _completion_logits(model, [p for p, _ in pairs], completion, done, pad_id, c.temperature)
            with torch.no_grad():
                contexts = [teacher_context(p, a, separator, bos_id, eos_ids) for p, a in pairs]
                teacher_logits = _completion_logits(teacher or model, contexts, completion, done, pad_id,
                                                    c.temperature)
            per_token = compute_topk_self_distillation_loss(
                student.float(), teacher_logits.float(), distillation_topk=min(c.topk, student.shape[-1]),
                distillation_alpha=c.alpha, distillation_add_tail=False)
            loss = ((per_token * done).sum(-1) / done.sum(-1).clamp(min=1)).mean()
            return loss / accum  # Trainer sums grad_accum micro-batches into one step: each carries its share

        return StageHooks(objective=objective)


SDFT = SelfDistillation()
