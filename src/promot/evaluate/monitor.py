"""The specialization monitor: watch format specialization happen, live, in your own run (paper Fig. 1-2).

Every N steps (and at step 0) a cheap ICL probe — a few lm-eval tasks, a few dozen items, the bare model with no
prompt — logs `icl_score` (Norm. Avg.) and `icl_leakage` (share of answers in the fine-tuned format) through the
Trainer's log: metrics.jsonl, TensorBoard and whatever `report_to` names.

The step-0 probe is of the model every method starts from: methods compared in one process (`promot compare`,
`promot demo`) measure it once, keyed by the weights' fingerprint and the probe's settings.
"""
from __future__ import annotations

import logging

from promot.evaluate.metrics import AnswerFormat
from promot.probe import Probe
from promot.prompt import PromptedLM
from promot.shared_work import shared

log = logging.getLogger(__name__)

class SpecializationMonitor(Probe):
    def __init__(self, tasks: list[str], every: int, fmt: AnswerFormat | None, tokenizer, shots: int = 1,
                 limit: int = 24, include_path: list[str] | None = None, batch_size: int = 16,
                 apply_chat_template: bool = False) -> None:
        self.tasks, self.every, self.fmt, self.tokenizer = tasks, every, fmt, tokenizer
        self.shots, self.limit, self.include_path, self.batch_size = shots, limit, include_path, batch_size
        self.chat = apply_chat_template
        self._loaded = None

    def _tasks(self):
        if self._loaded is None:  # build once: datasets and few-shot samplers are reused by every probe
            from promot.evaluate.runner import task_manager

            self._loaded = task_manager(self.include_path, list(self.tasks)).load(self.tasks)
            for task in self._loaded["tasks"].values():
                task.set_config(key="num_fewshot", value=self.shots)
        for task in self._loaded["tasks"].values():
            # Every probe draws the same exemplars: lm-eval's sampler RNG advances with each draw, so seeding once
            # would give each step (and each WiSE-FT α) its own exemplars, and a resumed run other ones again.
            task.set_fewshot_seed(seed=0)
        return self._loaded

    def measure(self) -> dict[str, float]:
        at_start = shared("monitor-at-start")  # a compare's runs from the same weights: measured once
        if at_start is None or self.trainer.state.global_step != 0 or self.trainer.args.world_size > 1:
            return self._measure()  # ranks must probe together
        from promot.models.fingerprint import fingerprint

        lm = self.trainer.accelerator.unwrap_model(self.trainer.model)
        key = (fingerprint(lm.model), tuple(self.tasks), self.shots, self.limit, self.chat, tuple(self.include_path or
               ()), None if self.fmt is None else repr(self.fmt), self.trainer.args.bf16, self.tokenizer.name_or_path)
        if key not in at_start:
            at_start[key] = self._measure()
        return dict(at_start[key])

    def _measure(self) -> dict[str, float]:
        from lm_eval.evaluator import evaluate

        from promot.distributed import gathered
        from promot.evaluate.lm_eval_model import PromptedHFLM
        from promot.evaluate.runner import EvalSpec, lean_lm_eval, summarize
        from promot.progress import quiet_lm_eval

        lm: PromptedLM = self.trainer.accelerator.unwrap_model(self.trainer.model)
        was_training = lm.training
        bare = PromptedLM(lm.model, None)  # shares the weights being trained; no prompt
        hflm = PromptedHFLM(bare, tokenizer=self.tokenizer, batch_size=self.batch_size,
                            device=str(next(lm.parameters()).device), bf16=self.trainer.args.bf16)
        with gathered(lm), quiet_lm_eval(), lean_lm_eval():  # FSDP2: the bare view runs the root unit's embeddings outside the root's forward
            results = evaluate(lm=hflm, task_dict=self._tasks(), limit=self.limit, log_samples=True,
                               bootstrap_iters=0, verbosity="ERROR", apply_chat_template=self.chat,
                               fewshot_as_multiturn=self.chat)
        lm.train(was_training)
        summary = summarize(results, EvalSpec(tasks=self.tasks, shots=[self.shots]), self.fmt)
        metrics = {"icl_score": summary.norm_avg}
        if summary.leakage is not None:
            metrics["icl_leakage"] = summary.leakage
        return metrics
