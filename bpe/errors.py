"""The one exception the `bpe` library raises for bad input."""


class TokenizerError(ValueError):
    """Bad input to the tokenizer library: the message is one line that names the problem and the fix.

    It subclasses ValueError so that code written for tiktoken (which raises ValueError) keeps working.
    """
