"""`owntrain evaluate`: a trained model's metrics on the workspace's test split or any labelled file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Mapping, Optional, Sequence

import typer

from owntrain.cli import app, echo_err, user_errors
from owntrain.config import DEFAULTS


def format_duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _num(x: Any, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _short(label: str, width: int = 14) -> str:
    return label if len(label) <= width else label[: width - 1] + "~"


def format_metrics(m: Mapping[str, Any], labels: Sequence[str], *, title: str, baseline: Mapping[str, Any] | None = None) -> str:
    """A readable table of classification_metrics(): per class, overall, baseline, confusion matrix."""
    names = [_short(lab) for lab in labels]
    w = max(5, *(len(n) for n in names))
    head = f"{title} ({m['n']:,} rows)"
    if m.get("threshold") is not None:
        head += f", threshold {m['threshold']:.3f} on P({_short(labels[1])})"
    lines = [head, f"  {'label':<{w}}  precision  recall      f1   support"]
    for lab, name in zip(labels, names):
        c = m["per_class"][lab]
        lines.append(f"  {name:<{w}}  {c['precision']:>9.3f}  {c['recall']:>6.3f}  {c['f1']:>6.3f}  {c['support']:>8,}")
    overall = f"  accuracy {_num(m['accuracy'])}   macro-F1 {_num(m['macro_f1'])}"
    if "roc_auc" in m:
        overall += f"   ROC AUC {_num(m['roc_auc'])}"
    overall += f"   log loss {_num(m.get('log_loss'))}"
    lines.append(overall)
    if baseline:
        lines.append(f"  majority-class baseline (always {_short(baseline['label'])!r}): "
                     f"accuracy {_num(baseline['accuracy'])}   macro-F1 {_num(baseline['macro_f1'])}")
    cm = m["confusion_matrix"]
    cw = max(w, *(len(f"{v:,}") for row in cm for v in row))
    lines.append("  confusion matrix (rows: true label, columns: predicted)")
    lines.append(f"  {'':<{w}}  " + "  ".join(f"{n:>{cw}}" for n in names))
    for name, row in zip(names, cm):
        lines.append(f"  {name:<{w}}  " + "  ".join(f"{v:>{cw},}" for v in row))
    return "\n".join(lines)


@app.command("evaluate")
def evaluate_command(
    data: Annotated[Optional[Path], typer.Argument(
        help="Labelled file (CSV, TSV, Parquet, JSON Lines) to evaluate on; default: the workspace's test split.",
        exists=True, dir_okay=True, readable=True, show_default=False)] = None,
    run: Annotated[Optional[str], typer.Option("--run", help="Run id under <workspace>/runs/ (default: latest finished).")] = None,
    text_col: Annotated[Optional[list[str]], typer.Option("--text-col", help="Text column(s) of DATA.")] = None,
    label_col: Annotated[Optional[str], typer.Option("--label-col", help="Label column of DATA.")] = None,
    label_map: Annotated[Optional[str], typer.Option(
        "--label-map", help="Map DATA's label values to the model's classes, e.g. '1-2=negative,4-5=positive'.")] = None,
    encoding: Annotated[str, typer.Option(help="Text encoding of DATA.")] = DEFAULTS.encoding,
    delimiter: Annotated[Optional[str], typer.Option(help="CSV delimiter of DATA (default: detected).")] = None,
    threshold: Annotated[Optional[float], typer.Option(
        help="Decision threshold on P(positive) for two classes (default: the run's, chosen on validation).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    workspace: Annotated[Path, typer.Option("--workspace", "-w", help="Workspace folder.")] = DEFAULTS.workspace,
) -> None:
    """Evaluate the trained model on the test split or on a labelled file."""
    from owntrain.evaluate import evaluate
    from owntrain.model import import_tensorflow_quietly

    import_tensorflow_quietly()
    with user_errors():
        result = evaluate(str(data) if data is not None else None, workspace=workspace, run=run,
                          text_col=text_col, label_col=label_col, label_map=label_map, encoding=encoding,
                          delimiter=delimiter, threshold=threshold)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return
    typer.echo(f"Run {result.run_id} ({result.run_dir})")
    title = result.source[:1].upper() + result.source[1:]
    typer.echo(format_metrics(result.metrics, result.labels, title=title, baseline=result.metrics.get("baseline")))
    if result.rejected:
        echo_err("Rows not evaluated: " + ", ".join(f"{n:,} {k}" for k, n in result.rejected.items()))
