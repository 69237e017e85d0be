"""The one exception tinygpt raises for bad input (a missing corpus, a corrupt checkpoint, a bad flag)."""


class TinyGPTError(Exception):
    """Bad input to tinygpt: the message is one line that names the problem and what to do."""
