"""What every command shares: bad input becomes one clear line on stderr and a non-zero exit, never a traceback."""
import sys

import click


def run_group(group: click.Group, args=None) -> None:
    """Run a click group, turning the libraries' errors into `error: <one line>` and exit status 1."""
    from bpe.errors import TokenizerError
    try:
        from tinygpt.errors import TinyGPTError
    except ImportError:  # pragma: no cover - tinygpt always ships with bpe here
        TinyGPTError = TokenizerError
    try:
        group.main(args=args, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except (TokenizerError, TinyGPTError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    except (OSError, UnicodeError) as e:
        click.echo(f"error: {one_line(e)}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


def one_line(e: BaseException) -> str:
    """A one-line description of an OS-level error, e.g. "No such file or directory: 'x.txt'"."""
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.strerror or e}: {e.filename!r}"
    return str(e).splitlines()[0] if str(e) else type(e).__name__
