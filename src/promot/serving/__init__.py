"""Take the model out: a finished run as a plain HF model directory any inference server serves (`promot export`,
`promot serve`). Each prompt becomes added vocabulary - P special tokens whose input embeddings are its vectors - so
a request picks its task by text prefix (completions) or by `chat_template_kwargs: {"promot_task": NAME}` (chat).

    export_dir.py  the directory: weights with the prompt rows, untied head, tokenizer, chat template, prefixes JSON
    template.py    the exported chat template (prefix on request, unknown task an error)
    serve.py       `promot serve RUN`: export, then `transformers serve` on it
"""
from __future__ import annotations

from promot.serving.export_dir import PREFIXES_FILE, Exported, export, prompt_embeds  # noqa: F401

__all__ = ["PREFIXES_FILE", "Exported", "export", "prompt_embeds"]
