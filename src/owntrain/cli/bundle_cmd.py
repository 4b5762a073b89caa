"""`owntrain export` (the bundle as one archive file) and `owntrain info` (a bundle's card and checksums)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Mapping, Optional

import typer

from owntrain.cli import app, echo_err, user_errors
from owntrain.config import DEFAULTS


def _size(n: int) -> str:
    value = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{int(value):,} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n}"  # pragma: no cover


def _num(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}"


def _metrics_line(metrics: Mapping[str, Any]) -> str:
    split = "test"
    m = metrics.get("test")
    if not m:
        split, m = "validation", metrics.get("validation")
    if not m:
        return "none recorded"
    line = f"{split} split, {m.get('n', 0):,} texts: accuracy {_num(m.get('accuracy'))}, macro-F1 {_num(m.get('macro_f1'))}"
    if "roc_auc" in m:
        line += f", ROC AUC {_num(m.get('roc_auc'))}"
    base = metrics.get("baseline") or {}
    if base:
        line += f" (majority baseline {_num(base.get('accuracy'))})"
    return line


def format_report(report: Any) -> str:
    """The bundle card `owntrain info` prints."""
    from owntrain.bundle import installed_versions

    man, labels, pre = report.manifest, report.labels, report.preprocessing
    model = man.get("model") or {}
    text = pre.get("text") or {}
    where = "folder" if report.kind == "folder" else f"{report.kind} archive"
    rows = [
        ("Bundle", f"{report.path} ({where}, {_size(report.size_bytes)})"),
        ("Fingerprint", report.fingerprint),
    ]
    if report.archive_sha256:
        rows.append(("Archive SHA-256", report.archive_sha256))
    rows.append(("Made", f"{man.get('created')} by owntrain {man.get('owntrain_version')} from run {man.get('run_id')} "
                         f"(bundle format {man.get('format_version')})"))
    names = labels.get("labels") or []
    decision = labels.get("decision", "")
    rows.append(("Labels", ", ".join(names) + (f"; {decision}" if decision else "")))
    if labels.get("threshold") is not None and labels.get("threshold_rule"):
        rows.append(("", f"threshold {labels.get('threshold_rule')}"))
    if pre:
        rows.append(("Language", f"{text.get('lang')} ({pre.get('tokenizer')}), "
                                 f"{'lowercased' if text.get('lowercase') else 'case kept'}, punctuation "
                                 f"{'kept' if text.get('keep_punct') else 'dropped'}"))
        norm = (pre.get("normalization") or {}).get("version")
        if pre.get("encoder") == "hash":
            enc = f"hash encoder, {pre.get('hash_buckets')} ids"
        else:
            enc = f"vocabulary of {model.get('vocab_size', '?')} ids (top_words {pre.get('top_words')}, min_df {pre.get('min_df')})"
        rows.append(("Preprocessing", f"normalisation v{norm}; {enc}; max_len {pre.get('max_len')}, padding "
                                      f"{pre.get('padding')}, truncating {pre.get('truncating')}"))
        if pre.get("text_columns"):
            rows.append(("Text columns", ", ".join(pre["text_columns"]) + " (as in training)"))
    if model:
        rows.append(("Model", f"{model.get('arch')}, {model.get('parameters', 0):,} parameters (embedding "
                              f"{model.get('vocab_size')}x{model.get('embedding_dim')}, {model.get('units')} units, "
                              f"dropout {model.get('dropout')})"))
    if report.metrics:
        rows.append(("Metrics", _metrics_line(report.metrics)))
    made = man.get("versions") or {}
    here = installed_versions()
    keys = ("tensorflow", "keras", "spacy", "numpy")
    rows.append(("Versions", ", ".join(f"{k} {made.get(k, '?')}" for k in keys)))
    same = all(made.get(k) == here.get(k) for k in keys)
    rows.append(("Installed here", "the same" if same else ", ".join(f"{k} {here.get(k)}" for k in keys)))
    for check in report.files:
        size = _size(check.bytes) if check.bytes is not None else "-"
        rows.append(("Files" if check is report.files[0] else "", f"{check.name:<20} {size:>12}  {check.status}"))
    if report.unlisted:
        rows.append(("Not in manifest", ", ".join(report.unlisted) + " (never loaded)"))
    bad = [c for c in report.files if not c.ok]
    status = (f"all {len(report.files)} files match manifest.json" if not bad
              else f"{len(bad)} of {len(report.files)} files do NOT match manifest.json")
    rows.append(("Checksums", status))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


@app.command("info")
def info_command(
    bundle: Annotated[Optional[Path], typer.Argument(
        help="Bundle folder or .tar.gz/.zip archive [default: <workspace>/bundle].", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the card as JSON.")] = False,
    workspace: Annotated[Path, typer.Option("--workspace", "-w", help="Workspace folder.")] = DEFAULTS.workspace,
) -> None:
    """Show a bundle's card (labels, preprocessing, metrics, sizes, versions) and verify its checksums."""
    from owntrain.bundle import inspect_bundle

    with user_errors():
        report = inspect_bundle(bundle, workspace=workspace)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=str))
    else:
        typer.echo(format_report(report))
    for note in report.version_notes:
        echo_err(f"Warning: {note}")
    if not report.ok:
        echo_err("Error: the bundle does not match its manifest: " + "; ".join(report.problems)
                 + ". Copy it again from the original or export it again with `owntrain export`.")
        raise typer.Exit(code=2)


@app.command("export")
def export_command(
    run: Annotated[Optional[str], typer.Option(
        "--run", help="Run id under <workspace>/runs/ [default: the workspace's bundle, from the latest run].",
        show_default=False)] = None,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Archive to write, *.tar.gz or *.zip [default: ./owntrain-bundle-<run_id>.tar.gz].",
        show_default=False)] = None,
    workspace: Annotated[Path, typer.Option("--workspace", "-w", help="Workspace folder.")] = DEFAULTS.workspace,
) -> None:
    """Write the trained model's bundle as one archive file to carry to the scoring machine."""
    from owntrain.bundle import export
    from owntrain.model import import_tensorflow_quietly

    import_tensorflow_quietly()  # exporting a run loads and re-saves its Keras model
    with user_errors():
        result = export(workspace, run=run, output=output)
    typer.echo(f"Wrote {result.archive} ({_size(result.archive_bytes)}), run {result.run_id}")
    typer.echo(f"  fingerprint     {result.fingerprint}")
    typer.echo(f"  archive SHA-256 {result.archive_sha256}")
    typer.echo(f"Check it on the scoring machine with `owntrain info {result.archive.name}`; "
               f"score with `owntrain score FILE --bundle {result.archive.name}`.")
