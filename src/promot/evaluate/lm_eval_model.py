"""An lm-eval model that scores a model with a soft prompt attached — correctly.

lm-eval's HFLM slices continuation logits at `inplen - contlen`, with no offset for virtual tokens (lm-eval PR
#533, open), so a PEFT prompt-tuned model is mis-scored. We subclass HFLM (its batching, tokenisation, caching and
request handling stay) and route its two model calls through `PromptedLM`, whose logits never include the prompt
positions and whose generation injects the prompt once at prefill.

    lm = PromptedHFLM(prompted_lm, tokenizer, batch_size=16)                 # in Python
    promot lm-eval --model promot --model_args run=RUN,prompt=on --tasks …    # the lm_eval CLI, model registered
"""
from __future__ import annotations

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils_hf import stop_sequences_criteria

from promot.precision import resolve_bf16
from promot.prompt import PromptedLM


@register_model("promot")
class PromptedHFLM(HFLM):
    """HFLM over a PromptedLM (prompt attached or not). Accepts an in-memory PromptedLM or a run directory."""

    def __init__(
        self,
        pretrained: PromptedLM | None = None,
        tokenizer=None,
        run: str | None = None,
        prompt: str | bool = "on",
        batch_size: int | str = 16,
        bf16: bool | str = False,
        **kwargs,
    ) -> None:
        if run is not None:  # the lm_eval CLI path: --model_args run=RUN,prompt=on|off
            from promot.runs import load_run

            loaded = load_run(run, with_prompt=str(prompt).lower() in ("on", "true", "1", "yes"))
            pretrained, tokenizer = loaded.lm, loaded.tokenizer
        if not isinstance(pretrained, PromptedLM):
            raise TypeError("PromptedHFLM needs a PromptedLM (or run=RUN_DIR)")
        self.prompted = pretrained.eval()
        if resolve_bf16(bf16):  # true / false / auto (bf16 where this machine runs it natively); default exact fp32
            kwargs.setdefault("mixed_precision_dtype", torch.bfloat16)
        super().__init__(pretrained=pretrained.model, tokenizer=tokenizer, batch_size=batch_size, **kwargs)

    def _model_call(self, inps: torch.Tensor, attn_mask: torch.Tensor | None = None,
                    labels: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T] → [B, T, V] (causal) or decoder logits [B, L, V] (seq2seq): prompt positions never appear."""
        with torch.no_grad(), torch.autocast(self.device.type, dtype=self.mixed_precision_dtype,
                                             enabled=self.mixed_precision_dtype is not None):
            if labels is not None:  # seq2seq: HFLM passes the encoder mask and decoder labels
                return self.prompted(inps, attn_mask, labels=labels).logits
            return self.prompted(inps).logits

    def _model_generate(self, context: torch.Tensor, max_length: int, stop: list[str], **generation_kwargs):
        """HFLM expects context + continuation back; PromptedLM returns only the continuation."""
        generation_kwargs["temperature"] = generation_kwargs.get("temperature", 0.0)
        if generation_kwargs["temperature"] == 0.0 and generation_kwargs.get("do_sample") is None:
            generation_kwargs["do_sample"] = False
        if generation_kwargs.get("do_sample") is False:
            generation_kwargs.pop("temperature", None)
        mask = generation_kwargs.pop("attention_mask", None)
        # With the prompt injected as embeddings, generate() sees no prompt ids: stop criteria start at 0.
        start = 0 if self.prompted.prompt is not None and not self.prompted.is_seq2seq else context.shape[1]
        if self.prompted.is_seq2seq:
            start = 1
        criteria = stop_sequences_criteria(self.tokenizer, stop, start, context.shape[0])
        with torch.autocast(self.device.type, dtype=self.mixed_precision_dtype,
                            enabled=self.mixed_precision_dtype is not None):
            new = self.prompted.generate(
                context, mask, max_new_tokens=max_length - context.shape[1], stopping_criteria=criteria,
                pad_token_id=self.tokenizer.pad_token_id, use_cache=True, **generation_kwargs,
            )
        if self.prompted.is_seq2seq:
            return new
        return torch.cat([context, new], dim=1)
