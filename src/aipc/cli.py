"""The ``aipc`` command line: one subcommand per verb, a thin shell over the Python API.

Each verb lives in ``aipc.commands.<verb>`` and registers itself on :data:`app`. Command modules
import nothing heavy at module level: torch and transformers are imported inside the functions that
need them, so ``aipc estimate``, ``aipc models``, ``aipc devices`` and ``aipc decide`` stay fast.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
import traceback

import typer

try:  # typer >= 0.25 vendors click as typer._click
    from typer._click import exceptions as cx
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as cx

from aipc import __version__
from aipc.errors import AipcError

_EXIT = tuple({typer.Exit, getattr(cx, "Exit", typer.Exit)})
_ABORT = tuple({typer.Abort, getattr(cx, "Abort", typer.Abort)})

# Verbs that run models in this process: they set aipc's allocator behaviour at start-up
# (aipc.runtime.configure_allocator), the one ``aipc estimate`` models on CPUs.
MODEL_VERBS = ("train", "generate", "serve", "bench", "validate")

# Verbs in the order `aipc --help` lists them; each is aipc.commands.<verb> with a register(app).
VERBS = [
    "hw", "models", "devices", "estimate", "validate", "bench", "results", "calibrate",
    "decide", "report", "train", "convert", "generate", "serve", "loadtest", "seal",
]

app = typer.Typer(
    name="aipc",
    help="Can your large-model work run on an AI PC, how fast, and at what cost against the cloud?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"aipc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
) -> None:
    """Can your large-model work run on an AI PC, how fast, and at what cost against the cloud?"""


for _verb in VERBS:
    importlib.import_module(f"aipc.commands.{_verb}").register(app)


_COMMAND = None


def command():
    """The click command behind :data:`app`, with every verb's flags checked before its body runs."""
    global _COMMAND
    if _COMMAND is None:
        from aipc.commands.options import validated

        _COMMAND = validated(typer.main.get_command(app))
    return _COMMAND


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI; bad input prints one line and returns exit code 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("AIPC_DEBUG") == "1"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no network at run time unless the user opts in
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    verb = next((a for a in argv if not a.startswith("-")), None)
    if verb in MODEL_VERBS:
        from aipc.runtime import configure_allocator

        configure_allocator()
    try:
        rv = command().main(args=argv, prog_name="aipc", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except AipcError as e:
        if debug:
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except cx.UsageError as e:
        if debug:
            traceback.print_exc()
        hint = f" (see 'aipc {e.ctx.info_name} --help')" if e.ctx and e.ctx.info_name != "aipc" else " (see 'aipc --help')"
        print(f"error: {e.format_message()}{hint}", file=sys.stderr)
        return 2
    except _EXIT as e:
        return getattr(e, "exit_code", 0)
    except _ABORT:
        print("aborted", file=sys.stderr)
        return 130
    except cx.ClickException as e:
        print(f"error: {e.format_message()}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk where aipc has no more specific message
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        if debug:
            traceback.print_exc()
        where = f" writing {e.filename}" if e.filename else ""
        print(f"error: {e.strerror}{where}; free space or write elsewhere", file=sys.stderr)
        return 2
    except RuntimeError as e:  # pathlib's expanduser on '~someone' that is not a user
        if "home directory" not in str(e):
            raise
        if debug:
            traceback.print_exc()
        print(f"error: a path starting with '~' names no known user ({e}); write the path in full", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
