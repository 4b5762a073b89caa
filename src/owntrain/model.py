"""The Keras model, its input pipeline and prediction: the recipe owntrain grew from, and variants.

The output is one sigmoid unit with binary cross-entropy for two classes, a softmax with sparse
categorical cross-entropy for three or more. Architectures (``--arch``):

``nbngram`` (the default)
    ``ngram`` plus, for two classes, a naive-Bayes-weighted linear term over the same ids (NBSVM
    style, Wang & Manning 2012): each word or bigram id ``i`` carries a fixed log-count ratio
    ``r_i`` (:func:`nb_log_ratios`, computed from the training split when fit starts, then frozen)
    and a trained weight ``w_i`` (L2-regularised, :data:`NB_C`); the text's logit is the ngram
    head's plus ``sum_i r_i * w_i`` over its ids. The ratios are per-id statistics like any other
    weight: no text or word is stored. With three or more classes the term is left out (one-vs-rest
    ratios lost to plain ngram on the validation split of the 5-star task), so nbngram is ngram.
``ngram``
    fastText-style: Embedding of the word ids and the hashed word-bigram ids the encoding appends
    (``EncodingSettings.ngram_buckets``) -> masked mean -> Dropout -> Dense. Order-free, so it
    trains in seconds per epoch.
``lstm``
    Embedding -> LSTM(units) -> Dense: the recipe (``Embedding(5000, 32) -> LSTM(100)`` with the
    recipe's settings, :data:`owntrain.config.RECIPE_SETTINGS`).
``bilstm``
    Embedding -> Bidirectional(LSTM(units)) -> Dense.
``flatten``
    The recipe's "without LSTM" variant: Embedding -> Flatten -> Dense(units, relu) -> Dense.
    It needs fixed-length input (every sequence padded to ``max_len``).

``dropout > 0`` adds Dropout layers after the embedding and before the output (ngram: before the
output only; the recipe's 0.0 adds none, so ``lstm`` stays the recipe). Nothing here is a custom layer or a Lambda, so the saved
``.keras`` file loads with ``safe_mode=True``.

Input pipeline: :func:`train_dataset` turns an encoded training split into a ``tf.data.Dataset``
that spans every remaining epoch, shuffled with a stateless seed per epoch, so a run resumed at
epoch ``k`` sees exactly the batches an uninterrupted run would have seen. Two batchings
(``fit --batching``): ``fixed`` gets sequences already padded to ``max_len`` (the recipe, no
masking); ``bucket`` (the default) gets unpadded sequences, batches texts of similar length
(:func:`bucket_batches`) and pads each batch only to its own longest sequence, for a model whose
Embedding masks padding (``mask_zero=True``), so the LSTM skips the padded steps. Validation,
evaluation and :func:`predict_proba` batch the same way and return rows in their original order.

TensorFlow and Keras are imported inside the functions, so importing this module is instant.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from owntrain.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import keras
    import tensorflow as tf

ARCHS: tuple[str, ...] = ("nbngram", "ngram", "lstm", "bilstm", "flatten")
NGRAM_ARCHS: tuple[str, ...] = ("nbngram", "ngram")
"""The architectures fed word ids followed by hashed bigram ids (``EncodingSettings.ngram_buckets``)."""

# The naive-Bayes term's regularisation, as liblinear's C: the L2 penalty on its weights is
# 1 / (2 * C * training rows) per squared weight (Keras adds it to the mean loss). Chosen once on
# the validation splits of the two-class benchmark tasks (C 0.1, 0.3, 1); see bench/README.md.
NB_C = 0.3
NB_ALPHA = 1.0  # add-one smoothing of the per-class document counts in the log-count ratios
# Keras adds the L2 penalty to "loss" and "val_loss". Early stopping watches the validation
# cross-entropy alone (val_loss minus the penalty, logged under this name), so a growing penalty
# does not stop training early: the penalty was most of nbngram's val_loss rise on IMDB.
NB_MONITOR = "val_log_loss"


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
        # A masking model (fit --batching bucket) runs boolean ops; on CPUs without full AVX-512
        # oneDNN logs "supports DT_BOOL only on platforms with AVX-512" the first time (once per
        # process, at ERROR level, so TF_CPP_MIN_LOG_LEVEL=2 keeps it). Trigger it here, silenced.
        tf.function(lambda x: tf.transpose(tf.not_equal(x, 0)))(tf.constant([[1, 0]], tf.int32))
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

    @property
    def nb_term(self) -> bool:
        """Whether the model has nbngram's naive-Bayes term (two classes only)."""
        return self.arch == "nbngram" and self.binary

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
    nb_ratios: np.ndarray | None = None,
    nb_l2: float = 0.0,
) -> "keras.Model":
    """The compiled Keras model for ``spec`` (Adam at ``learning_rate``).

    ``embedding_matrix`` (``vocab_size x embedding_dim``) initialises the embedding, e.g. from word
    vectors. ``mask_zero`` masks padding (id 0) for variable-length batches; the recipe does not.
    ``nb_ratios`` (``vocab_size``, from :func:`nb_log_ratios`) and ``nb_l2`` (:func:`nb_l2`) are the
    naive-Bayes term of a two-class ``nbngram`` model; it needs them.
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
    if spec.arch in NGRAM_ARCHS:
        # fastText-style: the mean of the word and bigram embeddings of a text (padding masked).
        x = layers.Embedding(spec.vocab_size, spec.embedding_dim, mask_zero=True, name="embedding", **emb_kwargs)(inputs)
        x = layers.GlobalAveragePooling1D(name="mean")(x)
        if spec.dropout > 0:
            x = layers.Dropout(spec.dropout, name="output_dropout")(x)
        if spec.nb_term:
            return _compile_nb_head(keras, spec, inputs, x, learning_rate, nb_ratios, nb_l2)
        return _compile_head(keras, spec, inputs, x, learning_rate)
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
    return _compile_head(keras, spec, inputs, x, learning_rate)


def _compile_head(keras: Any, spec: ModelSpec, inputs: Any, x: Any, learning_rate: float) -> "keras.Model":
    """The output layer (sigmoid for two classes, softmax for more), the model, compiled with Adam."""
    if spec.binary:
        outputs = keras.layers.Dense(1, activation="sigmoid", name="output")(x)
        loss = "binary_crossentropy"
    else:
        outputs = keras.layers.Dense(spec.n_classes, activation="softmax", name="output")(x)
        loss = "sparse_categorical_crossentropy"
    model = keras.Model(inputs, outputs, name=f"owntrain_{spec.arch}")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss=loss, metrics=["accuracy"])
    return model


def _compile_nb_head(keras: Any, spec: ModelSpec, inputs: Any, x: Any, learning_rate: float,
                     nb_ratios: np.ndarray | None, nb_l2: float) -> "keras.Model":
    """nbngram's two-class output: sigmoid(Dense(x) + sum over the text's ids of r_i * w_i)."""
    if nb_ratios is None:
        raise InputError("An nbngram model needs its naive-Bayes ratios (model.nb_log_ratios of the training split).")
    ratios = np.asarray(nb_ratios, dtype="float32").reshape(-1, 1)
    if ratios.shape[0] != spec.vocab_size:
        raise InputError(f"nb_ratios has {ratios.shape[0]} rows, expected vocab_size {spec.vocab_size}.")
    if not nb_l2 >= 0:
        raise InputError(f"nb_l2 must be at least 0, got {nb_l2!r}.")
    layers = keras.layers
    # Zeros first, the ratios set below: a Constant initialiser would copy them into config.json.
    ratio_layer = layers.Embedding(spec.vocab_size, 1, embeddings_initializer="zeros", trainable=False, name="nb_ratio")
    r = ratio_layer(inputs)
    w = layers.Embedding(spec.vocab_size, 1, embeddings_initializer="zeros",
                         embeddings_regularizer=keras.regularizers.L2(float(nb_l2)) if nb_l2 > 0 else None,
                         name="nb_weight")(inputs)
    # Dot over the sequence axis: sum_i r_i * w_i (padding, id 0, has r_0 = 0 and adds nothing)
    nb = layers.Flatten(name="nb_sum")(layers.Dot(axes=1, name="nb_dot")([r, w]))
    logit = layers.Add(name="logit")([layers.Dense(1, name="output_dense")(x), nb])
    outputs = layers.Activation("sigmoid", name="output")(logit)
    model = keras.Model(inputs, outputs, name=f"owntrain_{spec.arch}")
    ratio_layer.set_weights([ratios])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="binary_crossentropy",
                  metrics=["accuracy"])
    return model


def nb_log_ratios(seqs: "Sequence[np.ndarray] | np.ndarray", y: np.ndarray, vocab_size: int, *,
                  alpha: float = NB_ALPHA) -> np.ndarray:
    """Naive-Bayes log-count ratios of every id for a two-class training split (float32, ``vocab_size``).

    ``r_i = log((p_i / |p|_1) / (q_i / |q|_1))`` with ``p_i`` (``q_i``) the number of class-1
    (class-0) texts holding id ``i``, plus ``alpha``. Positive ids lean to class 1. An id absent
    from the split keeps its weight at 0 in training, so its ratio never counts. Row 0 (padding) is 0. ``seqs`` are unpadded id arrays or a padded matrix.
    """
    y = np.asarray(y)
    counts = np.zeros((2, vocab_size), dtype=np.float64)
    for k in (0, 1):
        rows = [np.unique(seqs[i]) for i in np.flatnonzero(y == k)]
        if rows:
            counts[k] = np.bincount(np.concatenate(rows), minlength=vocab_size)[:vocab_size]
    p, q = counts[1] + alpha, counts[0] + alpha
    p[0] = q[0] = 1.0  # padding: in no total (a padded matrix gives the ratios of its unpadded rows), ratio 0
    r = np.log(p / (p.sum() - 1.0)) - np.log(q / (q.sum() - 1.0))
    r[0] = 0.0
    return r.astype("float32")


def nb_l2(n_train: int, c: float = NB_C) -> float:
    """The L2 factor of the naive-Bayes weights for ``n_train`` training rows: 1 / (2 C n)."""
    return 1.0 / (2.0 * float(c) * max(1, int(n_train)))


def load_model(path: str | Path) -> "keras.Model":
    """Load a ``.keras`` model saved by owntrain, in Keras' safe mode (no arbitrary code)."""
    import keras

    return keras.models.load_model(str(path), safe_mode=True)


# --------------------------------------------------------------------------- input pipeline


BATCHINGS: tuple[str, ...] = ("bucket", "fixed")
BUCKET_MULTIPLE = 16       # a bucketed batch is padded to a multiple of this (fewer distinct shapes)
# Rows sorted by length together: batch_size * this. Larger chunks pad less but make batches more
# uniform in length; on IMDB (seed 42, epoch 1) 50 left the LSTM at 0.68 validation accuracy where
# 16 reached 0.85 and fixed padding 0.83, so 16 it is.
BUCKET_CHUNK_BATCHES = 16


def steps_per_epoch(n_rows: int, batch_size: int) -> int:
    return max(1, math.ceil(n_rows / batch_size))


def _is_ragged(x: Any) -> bool:
    """True for a list of 1-D id arrays (bucket mode), False for a padded 2-D matrix (fixed mode)."""
    return not (isinstance(x, np.ndarray) and x.ndim == 2)


def bucket_length(longest: int, max_len: int | None = None) -> int:
    """The padded length of a bucketed batch: its longest sequence rounded up to a multiple of 16.

    Rounding keeps the number of distinct batch shapes small (each can cost a retrace or a new
    kernel plan); ``max_len`` caps it, since no sequence is longer.
    """
    length = max(1, -(-int(longest) // BUCKET_MULTIPLE) * BUCKET_MULTIPLE)
    return min(length, int(max_len)) if max_len else length


def pad_batch(seqs: Sequence[np.ndarray], length: int, padding: str = "pre") -> np.ndarray:
    """``seqs`` (each at most ``length`` long) padded with id 0 to an int32 ``(len(seqs), length)`` matrix."""
    out = np.zeros((len(seqs), length), dtype=np.int32)
    for i, s in enumerate(seqs):
        n = len(s)
        if n:
            if padding == "pre":
                out[i, length - n:] = s
            else:
                out[i, :n] = s
    return out


def bucket_batches(lengths: np.ndarray, *, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Row indices of each batch of epoch ``epoch``: shuffled, batched by similar length, in shuffled order.

    A permutation seeded by ``(seed, epoch)`` is cut into chunks of ``batch_size * 16`` rows; each
    chunk is sorted by length (stable) and cut into batches, and the batch order is shuffled with
    the same seed. So a batch holds texts of similar length (little padding), an epoch still mixes
    short and long batches, and the order depends only on ``(seed, epoch)``: a resumed run sees the
    batches an uninterrupted one would. Only the very last batch of an epoch can be short, so an
    epoch has ``steps_per_epoch(n, batch_size)`` batches as in fixed mode.
    """
    n = len(lengths)
    rng = np.random.default_rng([int(seed) % (2**63), int(epoch)])
    perm = rng.permutation(n)
    chunk = batch_size * BUCKET_CHUNK_BATCHES
    batches: list[np.ndarray] = []
    for start in range(0, n, chunk):
        part = perm[start:start + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def train_dataset(
    x: "np.ndarray | Sequence[np.ndarray]",
    y: np.ndarray,
    *,
    batch_size: int,
    seed: int,
    first_epoch: int,
    epochs: int,
    sample_weight: np.ndarray | None = None,
    padding: str = "pre",
    max_len: int | None = None,
) -> "tf.data.Dataset":
    """Batches for epochs ``first_epoch .. epochs-1`` (0-based), one epoch after the other.

    ``x`` is either a padded int matrix (fixed mode, the recipe: rows shuffled, every batch
    ``max_len`` wide) or a list of unpadded id arrays (bucket mode, for a model that masks
    padding: see :func:`bucket_batches`; each batch is padded on the ``padding`` side to its own
    longest sequence rounded up to 16, at most ``max_len``).

    Epoch ``e`` is shuffled with the seed ``(seed, e)``: the order of every epoch depends only on
    the seed and the epoch number, never on how many epochs this process has run, so a resumed
    run continues exactly as an uninterrupted one. Pass it to ``model.fit`` with
    ``steps_per_epoch=steps_per_epoch(len(x), batch_size)`` and ``shuffle=False``.
    """
    import tensorflow as tf

    n = int(len(x))
    if n == 0:
        raise InputError("No training rows to batch.")
    last = int(max(epochs, first_epoch + 1))
    if _is_ragged(x):
        return _bucket_train_dataset(list(x), y, batch_size=batch_size, seed=seed, epochs=range(int(first_epoch), last),
                                     sample_weight=sample_weight, padding=padding, max_len=max_len)
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

    ds = tf.data.Dataset.range(int(first_epoch), last).flat_map(epoch_batches)
    return ds.prefetch(tf.data.AUTOTUNE)


def _bucket_train_dataset(seqs: list[np.ndarray], y: np.ndarray, *, batch_size: int, seed: int, epochs: range,
                          sample_weight: np.ndarray | None, padding: str, max_len: int | None) -> "tf.data.Dataset":
    """The bucket-mode :func:`train_dataset`: numpy batches fed through ``from_generator``.

    The batch width varies, so the element spec has a ``None`` length; Keras traces its train
    step once for that spec. Building a batch in numpy costs microseconds next to the LSTM step.
    """
    import tensorflow as tf

    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    y = np.asarray(y)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float32)

    def generate() -> Any:
        for epoch in epochs:
            for idx in bucket_batches(lengths, batch_size=batch_size, seed=seed, epoch=epoch):
                xb = pad_batch([seqs[i] for i in idx], bucket_length(lengths[idx].max(), max_len), padding)
                yield (xb, y[idx]) if w is None else (xb, y[idx], w[idx])

    spec: tuple = (tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, *y.shape[1:]], tf.as_dtype(y.dtype)))
    if w is not None:
        spec = (*spec, tf.TensorSpec([None], tf.float32))
    n_batches = steps_per_epoch(len(seqs), batch_size) * len(epochs)
    ds = tf.data.Dataset.from_generator(generate, output_signature=spec)
    return ds.apply(tf.data.experimental.assert_cardinality(n_batches)).prefetch(tf.data.AUTOTUNE)


def _length_sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Row indices of unshuffled prediction batches: rows sorted by length (stable), then cut."""
    order = np.argsort(lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def eval_dataset(
    x: "np.ndarray | Sequence[np.ndarray]",
    y: np.ndarray | None = None,
    *,
    batch_size: int,
    padding: str = "pre",
    max_len: int | None = None,
) -> "tf.data.Dataset":
    """Unshuffled batches of ``x`` (and ``y``) for validation and prediction.

    A padded matrix is batched in row order (fixed mode). A list of unpadded arrays (bucket
    mode) is batched in order of length, each batch padded to its own longest sequence (rounded
    up to 16): the batches are then *not* in row order, which does not matter for a loss or an
    accuracy; :func:`predict_proba` puts predictions back in row order.
    """
    import tensorflow as tf

    if not _is_ragged(x):
        data = (x,) if y is None else (x, y)
        return tf.data.Dataset.from_tensor_slices(data).batch(batch_size).prefetch(tf.data.AUTOTUNE)
    seqs = list(x)
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    batches = _length_sorted_batches(lengths, batch_size)
    yy = None if y is None else np.asarray(y)

    def generate() -> Any:
        for idx in batches:
            xb = pad_batch([seqs[i] for i in idx], bucket_length(lengths[idx].max(), max_len), padding)
            yield (xb,) if yy is None else (xb, yy[idx])

    spec: tuple = (tf.TensorSpec([None, None], tf.int32),)
    if yy is not None:
        spec = (*spec, tf.TensorSpec([None, *yy.shape[1:]], tf.as_dtype(yy.dtype)))
    # A known length lets Keras end validation and prediction without an "ran out of data" warning.
    ds = tf.data.Dataset.from_generator(generate, output_signature=spec)
    return ds.apply(tf.data.experimental.assert_cardinality(len(batches))).prefetch(tf.data.AUTOTUNE)


def targets(label_ids: np.ndarray, n_classes: int) -> np.ndarray:
    """Training targets: float 0/1 for the sigmoid output, int class ids for the softmax."""
    return label_ids.astype("float32") if n_classes == 2 else label_ids.astype("int32")


def predict_proba(
    model: "keras.Model",
    x: "np.ndarray | Sequence[np.ndarray]",
    *,
    batch_size: int,
    padding: str = "pre",
    max_len: int | None = None,
) -> np.ndarray:
    """Class probabilities, one row per sequence and one column per class (also for two classes).

    ``x`` is a padded matrix (fixed mode) or a list of unpadded id arrays (bucket mode, for a
    model that masks padding: predicted in length-sorted batches padded on the ``padding`` side,
    and returned in the order of ``x``).
    """
    if len(x) == 0:
        n_out = int(model.output_shape[-1])
        return np.zeros((0, 2 if n_out == 1 else n_out), dtype="float64")
    ragged = _is_ragged(x)
    ds = eval_dataset(x, batch_size=batch_size, padding=padding, max_len=max_len)
    out = np.asarray(model.predict(ds, verbose=0), dtype="float64")
    if ragged:  # batches came in length order: put each row back in its place
        lengths = np.fromiter((len(s) for s in x), dtype=np.int64, count=len(x))
        restored = np.empty_like(out)
        restored[np.argsort(lengths, kind="stable")] = out
        out = restored
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

