"""Every default owntrain uses, in one place.

The CLI options and the Python API both read their defaults from :data:`DEFAULTS`, so a default is
changed here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TEXT_COLUMN_NAMES: tuple[str, ...] = (
    "text", "review", "comment", "sentence", "body", "content", "message", "review_text",
    "kommentar", "rezension", "texte", "commentaire", "avis",
)
LABEL_COLUMN_NAMES: tuple[str, ...] = (
    "label", "sentiment", "stars", "rating", "score", "polarity", "class", "category", "target",
    "sterne", "klasse", "kategorie", "etoiles", "étoiles", "classe", "catégorie",
)
SPLIT_COLUMN_NAMES: tuple[str, ...] = ("split", "set", "subset", "fold")
SPLITS: tuple[str, ...] = ("train", "validation", "test")


@dataclass(frozen=True)
class Defaults:
    """Defaults for every step; see the README for what each one means."""

    # workspace and files
    workspace: Path = Path("owntrain-workspace")
    encoding: str = "utf-8"
    # ingest
    seed: int = 42
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    min_examples_per_label: int = 3
    batch_rows: int = 20_000
    progress_min_bytes: int = 20 * 1024 * 1024
    # text encoding
    lang: str = "en"
    lowercase: bool = True
    keep_punct: bool = False
    top_words: int = 5000
    min_df: int = 2
    max_len: int = 500
    padding: str = "pre"
    truncating: str = "pre"
    encoder: str = "vocab"
    hash_buckets: int = 5000
    # model and training (the recipe owntrain grew from)
    arch: str = "lstm"
    embedding_dim: int = 32
    units: int = 100
    dropout: float = 0.0
    epochs: int = 3
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 2
    # scoring
    score_batch_rows: int = 10_000
    predict_batch_size: int = 256     # texts per model call when scoring (faster than 64 on CPU)


DEFAULTS = Defaults()
