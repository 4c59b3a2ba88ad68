"""The world's tokenizer: word-level over `tasks.vocabulary()`, saved as a standard HF fast tokenizer.

Word-level (not char-level) keeps episodes short - one token per symbol - which is what makes pretraining fit in
minutes on 2 CPU cores. Whitespace splits words and is not a token; the world's own separator is ` ; `.
"""
from __future__ import annotations

from promot.world.tasks import vocabulary

SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]


def build_tokenizer():
    """A `PreTrainedTokenizerFast` (loads with AutoTokenizer once saved): BOS prepended, words joined by spaces."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate([*SPECIALS, *vocabulary()])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins word tokens with single spaces
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                      special_tokens=[("<s>", vocab["<s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", clean_up_tokenization_spaces=False, model_max_length=512)
