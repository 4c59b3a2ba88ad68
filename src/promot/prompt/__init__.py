"""② The soft prompt: the removable carrier of the fine-tuned task's format."""
from promot.prompt.init import init_prompt
from promot.prompt.peft_io import SavedPrompt, check_compatible, load_prompt, save_prompt
from promot.prompt.soft_prompt import PromptedLM, prompt_bos_id

__all__ = ["PromptedLM", "SavedPrompt", "check_compatible", "init_prompt", "load_prompt", "prompt_bos_id", "save_prompt"]
