"""`python -m bpe` is the `bpe` command."""
from cli.bpe_cli import main

main()
