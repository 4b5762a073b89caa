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
    # model and training: the recipe owntrain grew from (its LSTM is `--arch lstm`); the default
    # architecture is nbngram, whose own defaults (ARCH_DEFAULTS) replace these where they differ
    arch: str = "nbngram"
    embedding_dim: int = 32
    units: int = 100
    dropout: float = 0.0
    epochs: int = 3
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 2
    batching: str = "bucket"          # "bucket": batches of similar length, masked; "fixed": the recipe's max_len
    # scoring
    score_batch_rows: int = 10_000
    predict_batch_size: int = 256     # texts per model call when scoring (faster than 64 on CPU)


DEFAULTS = Defaults()


TRAINING_KNOBS: tuple[str, ...] = (
    "top_words", "max_len", "embedding_dim", "dropout", "epochs", "batch_size", "learning_rate", "patience",
    "ngram_buckets",
)
"""The settings whose default depends on the architecture (see :func:`arch_defaults`)."""

RECIPE_SETTINGS: dict[str, int | float] = dict(
    top_words=DEFAULTS.top_words, max_len=DEFAULTS.max_len, embedding_dim=DEFAULTS.embedding_dim,
    dropout=DEFAULTS.dropout, epochs=DEFAULTS.epochs, batch_size=DEFAULTS.batch_size,
    learning_rate=DEFAULTS.learning_rate, patience=DEFAULTS.patience, ngram_buckets=0,
)
"""The recipe's settings: the defaults of lstm, bilstm and flatten."""

NGRAM_BUCKETS_MAX = 2**20
NGRAM_BUCKETS_MIN = 2**12

NGRAM_SETTINGS: dict[str, int | float | str] = dict(
    top_words=50_000, max_len=1000, embedding_dim=16, dropout=0.3, epochs=40, batch_size="auto", learning_rate="auto",
    patience=2, ngram_buckets="auto",
)
"""The defaults of nbngram and ngram. Chosen once on the validation splits of the benchmark tasks (never
their test splits); see bench/README.md. 2**20 bigram buckets (dim 16) against 2**18 (dim 32): IMDB
validation 0.907 vs 0.905. "auto" bigram buckets: a power of two from 4x the training split's distinct
word pairs, at most 2**20. nbngram (ngram plus the naive-Bayes term, owntrain.model.NB_C) did as well
with these settings on the validation splits as with the learning rate 0.01 tried beside them.

"auto" batch size and learning rate (:func:`auto_batch_size`, :func:`auto_learning_rate`): batch 256 at
Adam 0.02 for large training splits, smaller batches at a proportionally smaller rate for small ones.
At most 40 epochs: early stopping ends a fit long before (IMDB after 4-5); 10 cut off the small sets."""

AUTO_BATCH_MAX = 256
AUTO_BATCH_MIN = 32
AUTO_STEPS_PER_EPOCH = 50
AUTO_LEARNING_RATE_AT_MAX = 0.02


def auto_batch_size(n_train: int) -> int:
    """The "auto" batch size for ``n_train`` training rows: at least :data:`AUTO_STEPS_PER_EPOCH` steps an epoch.

    The largest power of two that gives an epoch that many steps, between 32 and 256: IMDB's 22,224
    training rows get 256, a few thousand rows 32-64. With batch 256 a set of 3,000 texts had 12 steps
    an epoch, and at the learning rate that suits 256 its validation loss jumped between epochs so
    that early stopping kept epoch 1 or 2 (see bench/README.md, "Small training sets").
    """
    batch = AUTO_BATCH_MIN
    while batch * 2 <= AUTO_BATCH_MAX and batch * 2 * AUTO_STEPS_PER_EPOCH <= int(n_train):
        batch *= 2
    return batch


def auto_learning_rate(batch_size: int) -> float:
    """The "auto" Adam learning rate for ``batch_size``: 0.02 at 256, scaled by the square root of the batch.

    Square-root scaling is the usual rule for Adam (a batch a quarter the size: half the rate), so batch
    64 trains at 0.01, the setting the validation table of bench/README.md tried beside 256 at 0.02.
    """
    return round(AUTO_LEARNING_RATE_AT_MAX * (int(batch_size) / AUTO_BATCH_MAX) ** 0.5, 6)

ARCH_DEFAULTS: dict[str, dict[str, int | float | str]] = {
    "nbngram": NGRAM_SETTINGS,
    "ngram": NGRAM_SETTINGS,
    "lstm": RECIPE_SETTINGS,
    "bilstm": RECIPE_SETTINGS,
    "flatten": RECIPE_SETTINGS,
}


def arch_defaults(arch: str) -> dict[str, int | float | str]:
    """The default of every :data:`TRAINING_KNOBS` setting for ``arch`` (the recipe's for unknown ones)."""
    return dict(ARCH_DEFAULTS.get(arch, RECIPE_SETTINGS))
