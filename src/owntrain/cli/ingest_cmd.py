"""`owntrain ingest`: read, validate, normalise and split labelled texts into the workspace."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from owntrain.cli import app, echo_err, user_errors
from owntrain.config import DEFAULTS, SPLITS

WorkspaceOpt = Annotated[Path, typer.Option("--workspace", "-w", help="Workspace folder to write.")]


def _fractions(value: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in value.split(","))
    except ValueError:
        raise typer.BadParameter("expected three numbers such as 0.8,0.1,0.1") from None
    if len(parts) != 3:
        raise typer.BadParameter("expected three numbers such as 0.8,0.1,0.1")
    return parts  # type: ignore[return-value]


class _Progress:
    """A progress bar on stderr, shown only for inputs larger than DEFAULTS.progress_min_bytes."""

    def __init__(self, paths: list[Path]) -> None:
        total = sum(p.stat().st_size for p in paths if p.is_file())
        self.bar = None
        if total >= DEFAULTS.progress_min_bytes:
            self.bar = typer.progressbar(length=total, label="Reading", file=sys.stderr)
            self.bar.__enter__()
        self.last = 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is not None:
            scaled = int(done * self.bar.length / max(total, 1))
            self.bar.update(max(scaled - self.last, 0))
            self.last = max(scaled, self.last)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def format_summary(result: Any) -> str:
    r = result.report
    lines = [f"Ingested into {result.workspace}/",
             f"  rows read {r['rows']['read']:,}   kept {r['rows']['kept']:,}   rejected {r['rows']['rejected']:,}"]
    if r["rejected_by_reason"]:
        lines.append("  rejected: " + ", ".join(f"{n:,} {k}" for k, n in r["rejected_by_reason"].items())
                     + f"  (see {result.rejects})")
    width = max(len(label) for label in r["labels"] + ["label"])
    lines.append("")
    lines.append(f"  {'label':<{width}}  " + "  ".join(f"{s:>10}" for s in SPLITS) + f"  {'total':>10}")
    for label in r["labels"]:
        counts = [r["splits"][s][label] for s in SPLITS]
        lines.append(f"  {label:<{width}}  " + "  ".join(f"{c:>10,}" for c in counts) + f"  {sum(counts):>10,}")
    lines.append(f"  {'all':<{width}}  " + "  ".join(f"{r['split_sizes'][s]:>10,}" for s in SPLITS)
                 + f"  {r['rows']['kept']:>10,}")
    w = r["text_length_words"]
    if w:
        lines.append("")
        lines.append(f"  text length in words: median {w['p50']}, 5% {w['p5']}, 95% {w['p95']}, max {w['max']}")
    d = r["duplicates"]
    lines.append(f"  duplicates: {d['duplicate_rows']:,} repeated row(s) of {d['duplicate_texts']:,} text(s)"
                 f"{' (rejected)' if d['duplicates_dropped'] else ' (kept)'}"
                 + (f", {d['cross_split_duplicate_rows']:,} of them across splits" if d['cross_split_duplicate_rows'] else ""))
    if d["conflicting_texts"] and d["conflicts_dropped"]:
        lines.append(f"  {d['conflicting_texts']:,} text(s) with conflicting labels: {d['conflicting_rows']:,} row(s) rejected")
    for warning in r.get("warnings", []):
        lines.append(f"  WARNING: {warning}")
    if r["unmapped_label_values"]:
        lines.append("  label values not covered by --label-map: "
                     + ", ".join(f"{k!r} x{v:,}" for k, v in r["unmapped_label_values"].items()))
    g = r.get("groups")
    by_group = f", whole groups of {g['column']!r}: {g['groups']:,} group(s)" if g else ""
    lines.append(f"  split: {r['split_source']}{by_group} (seed {r['settings']['seed']}); report: {result.report_path}")
    return "\n".join(lines)


@app.command("ingest")
def ingest_command(
    paths: Annotated[list[Path], typer.Argument(help="CSV, TSV, Parquet, JSON Lines files, or a folder of "
                                                     "<label>/*.txt; several files: roles from their names.",
                                                show_default=False)],
    text_col: Annotated[Optional[list[str]], typer.Option(
        "--text-col", help="Text column; repeat (or comma-separate) to join several, e.g. title, pros, cons.")] = None,
    label_col: Annotated[Optional[str], typer.Option("--label-col", help="Label column.")] = None,
    label_map: Annotated[Optional[str], typer.Option(
        "--label-map", help="Map label values to classes, e.g. '1-2=negative,4-5=positive'.")] = None,
    split_col: Annotated[Optional[str], typer.Option(
        "--split-col", help="Column holding train/validation/test (a column named 'split' is used unasked).")] = None,
    group_col: Annotated[Optional[str], typer.Option(
        "--group-col", help="Column naming each row's group (product, customer, film): a group's rows never "
                            "straddle the splits ingest assigns, so validation and test hold unseen groups.")] = None,
    roles: Annotated[Optional[str], typer.Option(
        "--roles", help="Split role of each input in order, e.g. train,test (default: from file names).")] = None,
    split: Annotated[str, typer.Option("--split", help="Train,validation,test fractions.")] =
        ",".join(f"{f:g}" for f in DEFAULTS.split_fractions),
    seed: Annotated[int, typer.Option(help="Seed of the split.")] = DEFAULTS.seed,
    encoding: Annotated[str, typer.Option(help="Text encoding of the input files.")] = DEFAULTS.encoding,
    delimiter: Annotated[Optional[str], typer.Option(help="CSV delimiter (default: detected).")] = None,
    drop_duplicates: Annotated[bool, typer.Option(
        "--drop-duplicates", help="Reject repeats of a text seen earlier (default: keep and count them).")] = False,
    drop_conflicts: Annotated[bool, typer.Option(
        "--drop-conflicts", help="Reject every row of a text seen with different labels (default: flag them).")] = False,
    min_examples: Annotated[int, typer.Option(
        "--min-examples", help="Fewest examples a label needs to be kept.")] = DEFAULTS.min_examples_per_label,
    workspace: WorkspaceOpt = DEFAULTS.workspace,
) -> None:
    """Validate, normalise and split labelled texts into the workspace."""
    from owntrain.data import ingest

    with user_errors():
        bar = _Progress(paths)
        try:
            result = ingest(
                [str(p) for p in paths], workspace=workspace, text_col=text_col, label_col=label_col,
                split_col=split_col, group_col=group_col, roles=roles.split(",") if roles else None, label_map=label_map,
                encoding=encoding, delimiter=delimiter, seed=seed, split_fractions=_fractions(split),
                min_examples_per_label=min_examples, drop_duplicates=drop_duplicates,
                drop_conflicts=drop_conflicts, progress=bar,
            )
        finally:
            bar.close()
    typer.echo(format_summary(result))
    if result.rows_rejected:
        echo_err(f"{result.rows_rejected:,} row(s) rejected; each is listed with its reason in {result.rejects}")
