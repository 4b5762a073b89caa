"""The Keras model, its input pipeline and prediction: the recipe owntrain grew from, and variants.

The default is the recipe exactly: ``Embedding(top_words, 32) -> LSTM(100) -> Dense`` on sequences
padded to ``max_len``. The output is one sigmoid unit with binary cross-entropy for two classes, a
softmax with sparse categorical cross-entropy for three or more. Architectures (``--arch``):

``lstm``
    Embedding -> LSTM(units) -> Dense (the recipe).
``bilstm``
    Embedding -> Bidirectional(LSTM(units)) -> Dense.
``flatten``
    The recipe's "without LSTM" variant: Embedding -> Flatten -> Dense(units, relu) -> Dense.
    It needs fixed-length input (every sequence padded to ``max_len``).

``dropout > 0`` adds Dropout layers after the embedding and before the output (none at the default
0.0, so ``lstm`` stays the recipe). Nothing here is a custom layer or a Lambda, so the saved
``.keras`` file loads with ``safe_mode=True``.

Input pipeline: :func:`train_dataset` turns an encoded training split into a ``tf.data.Dataset``
that spans every remaining epoch, shuffled with a stateless seed per epoch, so a run resumed at
epoch ``k`` sees exactly the batches an uninterrupted run would have seen. Sequences arrive here
already padded to a fixed length (the recipe); a length-bucketed pipeline can replace
:func:`_epoch_batches` without touching the training loop.

TensorFlow and Keras are imported inside the functions, so importing this module is instant.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from owntrain.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import keras
    import tensorflow as tf

ARCHS: tuple[str, ...] = ("lstm", "bilstm", "flatten")


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and Keras and initialise the devices with stderr silenced.

    TensorFlow's C++ runtime prints start-up lines (oneDNN, CUDA probing) straight to file
    descriptor 2, before any Python logging setting applies. The CLI calls this once before
    training or scoring so a user sees only owntrain's own output; Python exceptions still propagate.
    Library code never calls it.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401
        import tensorflow as tf

        tf.config.list_logical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@dataclass(frozen=True)
class ModelSpec:
    """Everything that defines the network (saved with a run so a resume rebuilds the same one)."""

    arch: str
    vocab_size: int
    n_classes: int
    embedding_dim: int
    units: int
    dropout: float
    max_len: int

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise InputError(f"Unknown architecture {self.arch!r}. Use one of: {', '.join(ARCHS)} (e.g. --arch lstm).")
        for name in ("vocab_size", "embedding_dim", "units", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise InputError(f"{name} must be a positive whole number, got {value!r}.")
        if self.n_classes < 2:
            raise InputError(f"A classifier needs at least two classes, got {self.n_classes}.")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise InputError(f"dropout must be at least 0 and below 1 (e.g. 0.2), got {self.dropout!r}.")

    @property
    def binary(self) -> bool:
        return self.n_classes == 2

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelSpec":
        return cls(**{f: d[f] for f in cls.__dataclass_fields__})


def build_model(
    spec: ModelSpec,
    *,
    learning_rate: float,
    embedding_matrix: np.ndarray | None = None,
    mask_zero: bool = False,
) -> "keras.Model":
    """The compiled Keras model for ``spec`` (Adam at ``learning_rate``).

    ``embedding_matrix`` (``vocab_size x embedding_dim``) initialises the embedding, e.g. from word
    vectors. ``mask_zero`` masks padding (id 0) for variable-length batches; the recipe does not.
    Seed Keras (``keras.utils.set_random_seed``) before calling for reproducible initial weights.
    """
    import keras

    if not learning_rate > 0:
        raise InputError(f"learning_rate must be positive (e.g. 0.001), got {learning_rate!r}.")
    if spec.arch == "flatten" and mask_zero:
        raise InputError("The flatten architecture needs fixed-length input and cannot mask padding.")
    seq_len = spec.max_len if spec.arch == "flatten" else None
    layers = keras.layers
    emb_kwargs: dict[str, Any] = {}
    if embedding_matrix is not None:
        if embedding_matrix.shape != (spec.vocab_size, spec.embedding_dim):
            raise InputError(
                f"Embedding matrix has shape {embedding_matrix.shape}, expected "
                f"({spec.vocab_size}, {spec.embedding_dim})."
            )
        emb_kwargs["embeddings_initializer"] = keras.initializers.Constant(embedding_matrix.astype("float32"))

    inputs = keras.Input(shape=(seq_len,), dtype="int32", name="ids")
    x = layers.Embedding(spec.vocab_size, spec.embedding_dim, mask_zero=mask_zero, name="embedding", **emb_kwargs)(inputs)
    if spec.dropout > 0:
        x = layers.Dropout(spec.dropout, name="embedding_dropout")(x)
    if spec.arch == "lstm":
        x = layers.LSTM(spec.units, name="lstm")(x)
    elif spec.arch == "bilstm":
        x = layers.Bidirectional(layers.LSTM(spec.units), name="bilstm")(x)
    else:  # flatten
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(spec.units, activation="relu", name="hidden")(x)
    if spec.dropout > 0:
        x = layers.Dropout(spec.dropout, name="output_dropout")(x)
    if spec.binary:
        outputs = layers.Dense(1, activation="sigmoid", name="output")(x)
        loss = "binary_crossentropy"
    else:
        outputs = layers.Dense(spec.n_classes, activation="softmax", name="output")(x)
        loss = "sparse_categorical_crossentropy"
    model = keras.Model(inputs, outputs, name=f"owntrain_{spec.arch}")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss=loss, metrics=["accuracy"])
    return model


def load_model(path: str | Path) -> "keras.Model":
    """Load a ``.keras`` model saved by owntrain, in Keras' safe mode (no arbitrary code)."""
    import keras

    return keras.models.load_model(str(path), safe_mode=True)


# --------------------------------------------------------------------------- input pipeline


def steps_per_epoch(n_rows: int, batch_size: int) -> int:
    return max(1, math.ceil(n_rows / batch_size))


def train_dataset(
    x: np.ndarray,
    y: np.ndarray,
    *,
    batch_size: int,
    seed: int,
    first_epoch: int,
    epochs: int,
    sample_weight: np.ndarray | None = None,
) -> "tf.data.Dataset":
    """Batches for epochs ``first_epoch .. epochs-1`` (0-based), one epoch after the other.

    Epoch ``e`` is shuffled with the stateless seed ``(seed, e)``: the order of every epoch depends
    only on the seed and the epoch number, never on how many epochs this process has run, so a
    resumed run continues exactly as an uninterrupted one. Pass it to ``model.fit`` with
    ``steps_per_epoch=steps_per_epoch(len(x), batch_size)`` and ``shuffle=False``.
    """
    import tensorflow as tf

    n = int(len(x))
    if n == 0:
        raise InputError("No training rows to batch.")
    xs = tf.constant(x)
    ys = tf.constant(y)
    ws = tf.constant(sample_weight.astype("float32")) if sample_weight is not None else None
    seed_t = tf.constant(int(seed) % (2**63), tf.int64)

    def epoch_batches(epoch: "tf.Tensor") -> "tf.data.Dataset":
        order = tf.random.experimental.stateless_shuffle(tf.range(n), seed=tf.stack([seed_t, epoch]))
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size)
        if ws is None:
            return batches.map(lambda i: (tf.gather(xs, i), tf.gather(ys, i)))
        return batches.map(lambda i: (tf.gather(xs, i), tf.gather(ys, i), tf.gather(ws, i)))

    ds = tf.data.Dataset.range(int(first_epoch), int(max(epochs, first_epoch + 1))).flat_map(epoch_batches)
    return ds.prefetch(tf.data.AUTOTUNE)


def eval_dataset(x: np.ndarray, y: np.ndarray | None = None, *, batch_size: int) -> "tf.data.Dataset":
    """Unshuffled batches of ``x`` (and ``y``) for validation and prediction."""
    import tensorflow as tf

    data = (x,) if y is None else (x, y)
    return tf.data.Dataset.from_tensor_slices(data).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def targets(label_ids: np.ndarray, n_classes: int) -> np.ndarray:
    """Training targets: float 0/1 for the sigmoid output, int class ids for the softmax."""
    return label_ids.astype("float32") if n_classes == 2 else label_ids.astype("int32")


def predict_proba(model: "keras.Model", x: np.ndarray, *, batch_size: int) -> np.ndarray:
    """Class probabilities, one row per sequence and one column per class (also for two classes)."""
    if len(x) == 0:
        n_out = int(model.output_shape[-1])
        return np.zeros((0, 2 if n_out == 1 else n_out), dtype="float64")
    out = np.asarray(model.predict(eval_dataset(x, batch_size=batch_size), verbose=0), dtype="float64")
    if out.ndim == 2 and out.shape[1] == 1:
        p = np.clip(out[:, 0], 0.0, 1.0)
        return np.stack([1.0 - p, p], axis=1)
    return out


# --------------------------------------------------------------------------- word vectors


@dataclass(frozen=True)
class VectorsReport:
    """How much of the vocabulary a word-vector file covered."""

    path: str
    dim: int
    vectors_read: int
    tokens: int          # vocabulary tokens that could be initialised (ids 4 and up)
    covered: int         # of those, found in the file (exactly, or lowercased)

    @property
    def coverage(self) -> float:
        return self.covered / self.tokens if self.tokens else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "dim": self.dim, "vectors_read": self.vectors_read,
                "tokens": self.tokens, "covered": self.covered, "coverage": round(self.coverage, 6)}


def read_word_vectors(
    path: str | Path,
    token_ids: Mapping[str, int],
    vocab_size: int,
    *,
    seed: int = 0,
) -> tuple[np.ndarray, VectorsReport]:
    """An embedding matrix from a word2vec text file (GloVe, fastText ``.vec``), and its coverage.

    ``token_ids`` maps each vocabulary token to its id. Rows for tokens found in the file (first
    exactly, else lowercased) hold their vectors; the other rows are drawn uniformly from +-0.05
    (Keras' default embedding initialiser) with ``seed``; row 0 (padding) is zero. An optional
    ``count dim`` header line (word2vec, fastText) is recognised; GloVe files have none.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"Word-vector file {p} not found. Pass --vectors with a word2vec text file (.vec, GloVe .txt).")
    wanted: dict[str, list[int]] = {}
    for token, i in token_ids.items():
        if 4 <= int(i) < vocab_size:
            wanted.setdefault(token, []).append(int(i))
    found: dict[int, np.ndarray] = {}
    found_exact: set[int] = set()
    dim: int | None = None
    n_read = 0
    with open(p, "r", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.rstrip("\n\r ").split(" ")
            if lineno == 1 and len(parts) == 2 and all(s.isdigit() for s in parts):
                dim = int(parts[1])
                continue
            if len(parts) < 2:
                continue
            if dim is None:
                dim = len(parts) - 1
            if len(parts) != dim + 1:
                raise InputError(
                    f"{p}, line {lineno}: expected a word and {dim} numbers, found {len(parts) - 1} values. "
                    "Pass a word2vec text-format file (one 'word v1 v2 ...' per line)."
                )
            n_read += 1
            word = parts[0]
            exact = wanted.get(word)
            lower = wanted.get(word.lower()) if word.lower() != word else None
            if not exact and not lower:
                continue
            try:
                vec = np.asarray(parts[1:], dtype="float32")
            except ValueError:
                raise InputError(f"{p}, line {lineno}: a vector value is not a number.") from None
            for i in exact or ():
                found[i] = vec
                found_exact.add(i)
            for i in lower or ():
                if i not in found_exact and i not in found:
                    found[i] = vec
    if dim is None or n_read == 0:
        raise InputError(f"{p} holds no word vectors. Pass a word2vec text-format file (one 'word v1 v2 ...' per line).")
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(-0.05, 0.05, size=(vocab_size, dim)).astype("float32")
    matrix[0] = 0.0
    for i, vec in found.items():
        matrix[i] = vec
    n_tokens = len({i for ids in wanted.values() for i in ids})
    return matrix, VectorsReport(str(p), dim, n_read, n_tokens, len(found))

