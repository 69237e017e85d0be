"""The `tinygpt` command. Each sub-command lives in its own module and is registered here."""
import importlib

import click

from cli.common import run_group


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
def tinygpt():
    """Train, sample, evaluate and explain a small GPT written in tinygrad."""


# (module, command attribute) pairs; a module that is not written yet is skipped.
_COMMANDS = [
    ("cli.tinygpt_train", "train"),
    ("cli.tinygpt_generate", "generate"),
    ("cli.tinygpt_generate", "chat"),
    ("cli.tinygpt_learn", "demo"),
    ("cli.tinygpt_learn", "eval_cmd"),
    ("cli.tinygpt_learn", "explain"),
    ("cli.tinygpt_learn", "plot"),
    ("cli.tinygpt_learn", "sweep"),
]
for _module, _attr in _COMMANDS:
    try:
        tinygpt.add_command(getattr(importlib.import_module(_module), _attr))
    except (ImportError, AttributeError):
        pass


def main(args=None):
    run_group(tinygpt, args)


if __name__ == "__main__":
    main()
