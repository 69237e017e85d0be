"""bpe: a trainable byte-level BPE tokenizer, compatible with tiktoken and Hugging Face tokenizers.

Importing it never imports tinygrad.
"""
from bpe.errors import TokenizerError
from bpe.patterns import PATTERNS
from bpe.tokenizer import Tokenizer

__all__ = ["Tokenizer", "PATTERNS", "TokenizerError"]
