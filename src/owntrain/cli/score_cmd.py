"""`owntrain score`: a scored copy of a table file, or labels and probabilities for texts given inline or on stdin."""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Iterable, Iterator, Optional

import typer

from owntrain.cli import app, echo_err, user_errors
from owntrain.config import DEFAULTS

STDIN_CHUNK = 1000


class _Progress:
    """A live line on stderr while a file is scored (only on a terminal)."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()
        self.shown = False

    def __call__(self, event: Any) -> None:
        if self.live:
            sys.stderr.write(f"\r\033[K  scored {event.rows:,} rows ({100 * event.fraction:.0f}% of the input)")
            sys.stderr.flush()
            self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self.shown = False


def _text_lines(texts: Iterable[str], predictions: Any) -> Iterator[str]:
    for text, item in zip(texts, predictions):
        probs = "  ".join(f"{c} {'-' if p is None else f'{p:.4f}'}" for c, p in item["probabilities"].items())
        preview = " ".join(text.split())
        preview = preview if len(preview) <= 60 else preview[:59] + "~"
        yield f"{item['label'] if item['label'] is not None else '(empty text)'}\t{probs}\t{preview}"


def _json_lines(texts: Iterable[str], predictions: Any) -> Iterator[str]:
    for text, item in zip(texts, predictions):
        yield json.dumps({"text": text, **item}, ensure_ascii=False)


def _score_texts(bundle: Any, texts: Iterable[str], as_json: bool) -> None:
    """Predict and print texts in chunks, so stdin of any length streams through."""
    it = iter(texts)
    while chunk := list(itertools.islice(it, STDIN_CHUNK)):
        predictions = bundle.predict(chunk)
        for line in (_json_lines if as_json else _text_lines)(chunk, predictions):
            typer.echo(line)


def _stdin_texts() -> Iterator[str]:
    for line in sys.stdin:
        yield line.rstrip("\r\n")


def _summary(result: Any) -> str:
    counts = ", ".join(f"{label} {n:,}" for label, n in result.label_counts.items())
    lines = [
        f"Scored {result.rows:,} rows of {result.input} -> {result.output} in {result.seconds:.1f}s "
        f"({result.texts_per_second:,.0f} texts/s)",
        f"  predicted: {counts}",
        f"  text column(s): {', '.join(result.text_columns)}; columns added: {', '.join(result.added_columns)}",
    ]
    if result.empty or result.malformed:
        lines.append(f"  not scored (kept, marked in score_status): {result.empty:,} empty text, "
                     f"{result.malformed:,} malformed row(s)")
    return "\n".join(lines)


@app.command("score")
def score_command(
    file: Annotated[Optional[str], typer.Argument(
        help="CSV, TSV, Parquet or JSON Lines file to score; '-' reads one text per line from stdin.",
        show_default=False)] = None,
    text: Annotated[Optional[list[str]], typer.Option(
        "--text", "-t", help="A text to score (repeat for several); prints label and probabilities.")] = None,
    bundle: Annotated[Optional[Path], typer.Option(
        "--bundle", "-b", help="Bundle folder or .tar.gz/.zip archive [default: <workspace>/bundle].",
        show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Scored file to write; its extension picks the format [default: FILE.scored.EXT].",
        show_default=False)] = None,
    text_col: Annotated[Optional[list[str]], typer.Option(
        "--text-col", help="Text column(s) of FILE (repeat to join several) [default: detected].",
        show_default=False)] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of FILE (the output is UTF-8).")] = DEFAULTS.encoding,
    delimiter: Annotated[Optional[str], typer.Option(help="CSV delimiter of FILE [default: detected].",
                                                     show_default=False)] = None,
    batch_rows: Annotated[int, typer.Option("--batch-rows", help="Rows per batch (memory grows with it).")]
        = DEFAULTS.score_batch_rows,
    as_json: Annotated[bool, typer.Option("--json", help="With --text or '-': one JSON object per text.")] = False,
    workspace: Annotated[Path, typer.Option("--workspace", "-w", help="Workspace folder.")] = DEFAULTS.workspace,
) -> None:
    """Score a file (a scored copy keeping every column and row) or texts given with --text or on stdin."""
    from owntrain.bundle import load_bundle
    from owntrain.errors import InputError
    from owntrain.model import import_tensorflow_quietly

    display = _Progress()
    with user_errors():
        if file is None and not text:
            raise InputError("Nothing to score. Pass a FILE (CSV, TSV, Parquet, JSON Lines), --text \"...\", "
                             "or '-' to read one text per line from stdin.")
        if file is not None and text:
            raise InputError("Pass either a FILE or --text, not both.")
        if output is not None and (text or file == "-"):
            raise InputError("--output applies to a FILE; --text and stdin print their results.")
        import_tensorflow_quietly()
        loaded = load_bundle(bundle, workspace=workspace, warn=False)
        for message in loaded.warnings:
            echo_err(f"Warning: {message}")
        if text:
            _score_texts(loaded, text, as_json)
            return
        if file == "-":
            _score_texts(loaded, _stdin_texts(), as_json)
            return
        from owntrain.score import score_file

        try:
            result = score_file(file, bundle=loaded, output=output, text_col=text_col, encoding=encoding,
                                delimiter=delimiter, batch_rows=batch_rows, progress=display)
        finally:
            display.close()
    typer.echo(_summary(result))
