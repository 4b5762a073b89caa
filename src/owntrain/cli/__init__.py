"""The `owntrain` command line: thin Typer wrappers over the library functions.

Each command lives in its own module under :mod:`owntrain.cli`; this module owns the Typer app,
the error handling and the exit codes. Library functions never print or exit; commands do.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

import typer

from owntrain.errors import OwntrainError

app = typer.Typer(
    name="owntrain",
    help="Train your own text classifier on your own labelled texts, on your own machines.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def echo_err(message: str) -> None:
    typer.echo(message, err=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn owntrain errors into one message on stderr and an exit code, never a traceback."""
    try:
        yield
    except OwntrainError as exc:
        echo_err(f"Error: {exc}")
        raise typer.Exit(code=exc.exit_code) from None
    except KeyboardInterrupt:
        echo_err("Interrupted; nothing half-written was left behind. Run the same command again to continue.")
        raise typer.Exit(code=130) from None


def _version(value: bool) -> None:
    if value:
        from owntrain import __version__

        typer.echo(f"owntrain {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """Train your own text classifier on your own labelled texts, on your own machines.

    Typical use: `owntrain ingest reviews.csv`, then `owntrain fit --lang de`, then `owntrain score new.csv`.
    """


def _register() -> None:
    # Each import registers its command(s) on `app`, in the order of the user's path; none of them
    # imports TensorFlow, spaCy or pandas at import time, so `owntrain --help` stays instant.
    from owntrain.cli import ingest_cmd, vocab_cmd, fit_cmd, evaluate_cmd, bundle_cmd, score_cmd  # noqa: F401


_register()


def main() -> None:
    app(prog_name="owntrain")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
