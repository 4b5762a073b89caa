"""Shared fixtures: tiny synthetic workspaces written directly with pandas (no ingest needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

NEUTRAL = ("the film was a and it of story actor plot scene really very quite this that "
           "with for on in his her they we one two some most music ending").split()
CUES = (
    ("great", "wonderful", "superb", "brilliant"),
    ("awful", "boring", "dull", "terrible"),
    ("funny", "hilarious", "witty", "charming"),
    ("scary", "creepy", "tense", "eerie"),
    ("long", "slow", "quiet", "calm"),
)


def synthetic_rows(labels: Sequence[str], n: int, *, seed: int = 0, noise: float = 0.1) -> list[tuple[str, str]]:
    """``n`` (text, label) pairs: neutral filler words plus cue words of the row's label (balanced)."""
    if len(labels) > len(CUES):
        raise ValueError(f"at most {len(CUES)} labels")
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        k = i % len(labels)
        words = list(rng.choice(NEUTRAL, size=int(rng.integers(6, 25))))
        for _ in range(int(rng.integers(1, 4))):
            cue_class = int(rng.integers(len(labels))) if rng.random() < noise else k
            words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(CUES[cue_class])))
        rows.append((" ".join(words), labels[k]))
    return rows


def write_workspace(
    root: Path,
    rows: Sequence[tuple[str, str]],
    labels: Sequence[str],
    *,
    splits: Sequence[str] | None = None,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> Path:
    """A workspace folder with dataset.parquet and ingest_report.json as ingest writes them."""
    import pandas as pd

    root.mkdir(parents=True, exist_ok=True)
    if splits is None:
        u = np.random.default_rng(seed + 1).random(len(rows))
        cut = np.cumsum(fractions)
        splits = np.where(u < cut[0], "train", np.where(u < cut[1], "validation", "test")).tolist()
    df = pd.DataFrame({
        "text": [t for t, _ in rows],
        "text_original": [t for t, _ in rows],
        "label": [lab for _, lab in rows],
        "split": list(splits),
        "source_file": "synthetic.csv",
        "source_line": np.arange(2, len(rows) + 2, dtype="int64"),
    })
    df.to_parquet(root / "dataset.parquet", index=False)
    (root / "ingest_report.json").write_text(json.dumps({"labels": list(labels)}), encoding="utf-8")
    return root


@pytest.fixture
def make_workspace(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_workspace(labels=("neg", "pos"), n=300, seed=0, name="ws") -> workspace path``."""

    def make(labels: Sequence[str] = ("neg", "pos"), n: int = 300, *, seed: int = 0, name: str = "ws",
             rows: Sequence[tuple[str, str]] | None = None, splits: Sequence[str] | None = None) -> Path:
        data = list(rows) if rows is not None else synthetic_rows(labels, n, seed=seed)
        return write_workspace(tmp_path / name, data, labels, splits=splits, seed=seed)

    return make
