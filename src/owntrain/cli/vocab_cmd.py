"""`owntrain vocab`: the vocabulary's top tokens with ids and counts; encode a text, decode ids."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from owntrain.cli import app, user_errors
from owntrain.config import DEFAULTS

if TYPE_CHECKING:  # pragma: no cover
    from owntrain.encoding import EncoderSource


def format_source(src: "EncoderSource") -> str:
    """One line saying which encoder is shown and with which settings."""
    s, enc = src.settings, src.encoder
    text = f"lang {s.text.lang}, lowercase {s.text.lowercase}, keep_punct {s.text.keep_punct}"
    if enc.kind == "hash":
        return f"Hash encoder from {src.path} ({enc.size:,} ids; {text})"
    where = f"bundle {src.path}" if src.origin == "bundle" else f"training split of {src.path} ({enc.n_docs:,} texts)"
    return (f"Vocabulary from {where}: {enc.n_tokens:,} tokens, {enc.size:,} ids "
            f"(top_words {enc.top_words:,}, min_df {enc.min_df}; {text})")


def format_top(src: "EncoderSource", limit: int) -> str:
    """The ``limit`` most frequent tokens as an id / count / token table."""
    enc = src.encoder
    if enc.kind == "hash":
        return "The hash encoder stores no tokens; use --encode to see a text's ids."
    rows = enc.top(limit)
    if not rows:
        return "The vocabulary is empty: no token occurs in min_df training texts. Lower --min-df."
    width = max(len(f"{c:,}") for _, _, c in rows)
    id_width = max(len(str(i)) for i, _, _ in rows)
    lines = [f"{'id':>{id_width}}  {'count':>{width}}  token"]
    lines += [f"{i:>{id_width}}  {c:>{width},}  {t}" for i, t, c in rows]
    return "\n".join(lines)


@app.command("vocab")
def vocab(
    workspace: Annotated[Path, typer.Option("--workspace", "-w", help="Workspace folder to read.")] = DEFAULTS.workspace,
    lang: Annotated[Optional[str], typer.Option(
        help=f"spaCy language code [default: the bundle's, else {DEFAULTS.lang}]; builds from the training split.")] = None,
    top_words: Annotated[Optional[int], typer.Option(
        min=5, help=f"Ids 0..top_words-1 [default: the bundle's, else {DEFAULTS.top_words}]; builds from the training split.")] = None,
    min_df: Annotated[Optional[int], typer.Option(
        min=1, help=f"Minimum training texts per token [default: the bundle's, else {DEFAULTS.min_df}]; builds from the training split.")] = None,
    limit: Annotated[int, typer.Option(min=0, help="How many of the most frequent tokens to list.")] = 20,
    encode: Annotated[Optional[str], typer.Option(help="Show the ids of this text.")] = None,
    decode: Annotated[Optional[str], typer.Option(help="Turn ids such as '1 14 22 2' back into tokens.")] = None,
) -> None:
    """List top tokens with ids and counts; encode a text or decode ids."""
    with user_errors():
        from owntrain.encoding import encode_text, find_encoder, parse_ids

        ids_to_decode = parse_ids(decode) if decode is not None else None
        src = find_encoder(workspace=_workspace(workspace), lang=lang, top_words=top_words, min_df=min_df)
        typer.echo(format_source(src))
        if encode is None and ids_to_decode is None:
            typer.echo(format_top(src, limit))
        if encode is not None:
            ids = encode_text(encode, src.settings, src.encoder)
            typer.echo(f"ids:     {' '.join(map(str, ids))}")
            typer.echo(f"decoded: {src.encoder.decode(ids)}")
        if ids_to_decode is not None:
            typer.echo(f"decoded: {src.encoder.decode(ids_to_decode)}")


def _workspace(path: Path):
    from owntrain.workspace import Workspace

    return Workspace.at(path)
