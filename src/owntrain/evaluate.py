"""Evaluation: the metrics of a trained model, computed in numpy, and `owntrain evaluate`.

Metrics for a labelled split: accuracy, per-class precision / recall / F1 (0.0 where undefined),
macro-F1, the confusion matrix (rows are true classes, columns predicted ones, both in class-index
order), log loss, and for two classes the ROC AUC (Mann-Whitney, ties counted half) of the
positive class (index 1).

Decision threshold (two classes): the model predicts the positive class when its probability is at
least ``threshold``. :func:`choose_threshold` picks it on the validation split, never on the test
split: the cut between two neighbouring validation probabilities that maximises validation
macro-F1 (the mean F1 of both classes, so a rare class counts as much as a frequent one), ties
broken towards 0.5. Three or more classes: the most probable class, no threshold.

The majority-class baseline predicts the most frequent training label for every row, so a user
sees at once whether the model learned anything beyond the label distribution.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from owntrain.config import DEFAULTS
from owntrain.errors import ValidationError

THRESHOLD_RULE = "maximises macro-F1 on the validation split (ties towards 0.5)"


# --------------------------------------------------------------------------- metric maths


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Counts, ``cm[i, j]`` = rows of true class i predicted as class j."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.shape} entries but y_pred {p.shape}.")
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def precision_recall_f1(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall, F1 and support from a confusion matrix (0.0 where undefined)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    predicted = cm.sum(axis=0)
    support = cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
    return precision, recall, f1, support.astype(np.int64)


def roc_auc(y_true: Sequence[int], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve for binary labels (1 = positive); None if only one class is present.

    Equal to the probability that a random positive scores higher than a random negative, ties
    counting one half (average ranks).
    """
    t = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos = int(t.sum())
    n_neg = int(t.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)                       # rank of the last member of each group (1-based)
    avg_rank = ends - (counts - 1) / 2.0           # average rank within each group of ties
    ranks = avg_rank[inverse]
    return float((ranks[t].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(y_true: Sequence[int], proba: np.ndarray, eps: float = 1e-7) -> float:
    """Mean cross-entropy of the true class (probabilities clipped to [eps, 1 - eps])."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(proba, dtype=np.float64)
    if t.size == 0:
        return float("nan")
    return float(-np.mean(np.log(np.clip(p[np.arange(t.size), t], eps, 1 - eps))))


def choose_threshold(y_true: Sequence[int], p_pos: Sequence[float]) -> tuple[float, float]:
    """The threshold on the positive-class probability maximising macro-F1, and that macro-F1.

    Candidates are the midpoints between neighbouring distinct probabilities (and just above the
    largest, just below the smallest); among equally good ones the closest to 0.5 wins.
    """
    t = np.asarray(y_true).astype(bool)
    s = np.asarray(p_pos, dtype=np.float64)
    if t.size == 0:
        return 0.5, float("nan")
    order = np.argsort(-s, kind="stable")
    s_sorted, t_sorted = s[order], t[order]
    distinct = np.unique(s_sorted)[::-1]           # descending
    # Predict positive for the top k rows, k at every group boundary (0 .. n).
    last_of_group = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True]) + 1
    k = np.r_[0, last_of_group]
    cum_pos = np.r_[0, np.cumsum(t_sorted)]
    tp = cum_pos[k].astype(np.float64)
    fp = k - tp
    n_pos = float(t.sum())
    n_neg = float(t.size - n_pos)
    fn = n_pos - tp
    tn = n_neg - fp
    with np.errstate(divide="ignore", invalid="ignore"):
        f1_pos = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        f1_neg = np.where(2 * tn + fn + fp > 0, 2 * tn / (2 * tn + fn + fp), 0.0)
    macro = (f1_pos + f1_neg) / 2
    # Threshold for each k: just above the largest (k=0), midpoints, just below the smallest (k=n).
    upper = np.r_[np.nextafter(distinct[0], np.inf), (distinct[:-1] + distinct[1:]) / 2, distinct[-1] / 2]
    best = macro.max()
    candidates = np.flatnonzero(macro >= best - 1e-12)
    pick = candidates[np.argmin(np.abs(upper[candidates] - 0.5))]
    return float(upper[pick]), float(macro[pick])


def predict_ids(proba: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Predicted class ids: ``p[:, 1] >= threshold`` for two classes with a threshold, else argmax."""
    p = np.asarray(proba, dtype=np.float64)
    if p.shape[1] == 2 and threshold is not None:
        return (p[:, 1] >= threshold).astype(np.int64)
    return np.argmax(p, axis=1).astype(np.int64)


def classification_metrics(
    y_true: Sequence[int],
    proba: np.ndarray,
    labels: Sequence[str],
    *,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Every metric for one labelled set, as a JSON-ready dict."""
    t = np.asarray(y_true, dtype=np.int64)
    y_pred = predict_ids(proba, threshold)
    out = _report_from_predictions(t, y_pred, labels)
    out["log_loss"] = _round(log_loss(t, proba))
    if len(labels) == 2:
        auc = roc_auc(t, np.asarray(proba)[:, 1])
        out["roc_auc"] = None if auc is None else _round(auc)
        out["threshold"] = None if threshold is None else _round(threshold)
    return out


def majority_baseline(train_counts: Mapping[str, int], y_true: Sequence[int], labels: Sequence[str]) -> dict[str, Any]:
    """Metrics of always predicting the most frequent training label (ties: lowest class index)."""
    counts = np.array([int(train_counts.get(lab, 0)) for lab in labels])
    majority = int(np.argmax(counts))
    t = np.asarray(y_true, dtype=np.int64)
    report = _report_from_predictions(t, np.full_like(t, majority), labels)
    return {"label": labels[majority], "accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}


def _report_from_predictions(t: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    cm = confusion_matrix(t, y_pred, len(labels))
    precision, recall, f1, support = precision_recall_f1(cm)
    n = int(t.size)
    return {
        "n": n,
        "accuracy": _round(float(np.trace(cm)) / n) if n else None,
        "macro_f1": _round(float(f1.mean())) if n else None,
        "per_class": {
            lab: {"precision": _round(precision[i]), "recall": _round(recall[i]), "f1": _round(f1[i]),
                  "support": int(support[i])}
            for i, lab in enumerate(labels)
        },
        "confusion_matrix": cm.tolist(),
    }


def _round(x: float) -> float:
    return float(round(float(x), 6))


# --------------------------------------------------------------------------- evaluate a trained run


@dataclass
class EvaluationResult:
    """What `evaluate` measured for one run on one labelled set."""

    run_id: str
    run_dir: Path
    source: str                      # "test split of <workspace>" or the file evaluated
    labels: list[str]
    metrics: dict[str, Any]          # classification_metrics() plus "baseline"
    rejected: dict[str, int] = field(default_factory=dict)   # rows of DATA not evaluated, by reason

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "run_dir": str(self.run_dir), "source": self.source,
                "labels": self.labels, "metrics": self.metrics, "rejected": self.rejected}


def evaluate(
    data: str | os.PathLike | None = None,
    *,
    workspace: str | os.PathLike | None = None,
    run: str | None = None,
    text_col: str | Sequence[str] | None = None,
    label_col: str | None = None,
    label_map: str | None = None,
    encoding: str = DEFAULTS.encoding,
    delimiter: str | None = None,
    threshold: float | None = None,
    batch_size: int | None = None,
) -> EvaluationResult:
    """Evaluate a trained run on the workspace's test split, or on any labelled file ``data``.

    ``run`` names a folder under the workspace's ``runs/`` (default: the latest finished run).
    ``threshold`` overrides the run's validation-chosen threshold (two classes only). Labels in
    ``data`` must be among the model's labels (``label_map`` maps raw values, as in ingest).
    Texts are batched as the run trained: by length with per-batch padding for a ``bucket`` run,
    padded to ``max_len`` for a ``fixed`` one (the metrics are the same either way for a masked model).
    """
    from owntrain import train as training
    from owntrain.model import load_model
    from owntrain.workspace import Workspace

    ws = Workspace.at(workspace)
    loaded = training.load_finished_run(ws, run)
    labels = loaded.labels
    if threshold is not None and len(labels) != 2:
        raise ValidationError("A threshold applies to two classes only; this model has "
                              f"{len(labels)}: {', '.join(labels)}.")
    if data is None:
        import pandas as pd

        ws.require_dataset()
        df = pd.read_parquet(ws.dataset, columns=["text", "label", "split"])
        df = df[df["split"] == "test"]
        if df.empty:
            raise ValidationError(
                f"The workspace {ws.root}/ has no test split to evaluate on. Pass a labelled file: "
                "`owntrain evaluate FILE`."
            )
        source = f"test split of {ws.root}"
        rejected: dict[str, int] = {}
    else:
        from owntrain.data import read_labelled_table

        df = read_labelled_table(data, text_col=text_col, label_col=label_col, label_map=label_map,
                                 encoding=encoding, delimiter=delimiter)
        source = str(data)
        rejected = dict(df.attrs.get("rejected", {}))
        if df.empty:
            raise ValidationError(f"{data} has no labelled rows to evaluate (rejected: {rejected or 'none'}).")
    index = {lab: i for i, lab in enumerate(labels)}
    unknown = sorted(set(df["label"]) - set(index))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise ValidationError(
            f"{source} has labels the model was not trained on: {shown} ({len(unknown)} in all). "
            f"The model knows: {', '.join(labels)}. Map them with --label-map (e.g. '1-2=neg,4-5=pos')."
        )
    y = df["label"].map(index).to_numpy(dtype=np.int64)
    x = loaded.encode(df["text"].tolist())  # unpadded in bucket mode, padded to max_len in fixed mode
    model = load_model(loaded.model_path)
    proba = loaded.predict_proba(model, x, batch_size=batch_size)
    use_threshold = loaded.threshold if threshold is None else float(threshold)
    metrics = classification_metrics(y, proba, labels, threshold=use_threshold)
    metrics["baseline"] = majority_baseline(loaded.train_counts, y, labels)
    return EvaluationResult(loaded.run_id, loaded.run_dir, source, labels, metrics, rejected)
