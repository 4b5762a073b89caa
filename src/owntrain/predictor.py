"""A loaded bundle: encodes texts exactly as training did and predicts their classes.

:func:`owntrain.bundle.load_bundle` verifies a bundle and returns a :class:`Bundle`; its
:meth:`~Bundle.predict` normalises, tokenizes and encodes each text as in training and returns
:class:`Predictions` (label, class probabilities and status per text, in order).

Sequences are batched by length where that gives the fixed-length result (a model that masks
padding, or the recipe's pre-padded LSTM through :class:`_PadStatePlan`), else padded to
``max_len`` as in training; see :attr:`Bundle.batching`.

TensorFlow is imported only inside the functions that run the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

import numpy as np

from owntrain.config import DEFAULTS
from owntrain.errors import InputError
from owntrain.model import bucket_length

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from owntrain.encoding import Encoder, EncodingSettings


@dataclass(frozen=True)
class Predictions:
    """Predictions for a list of texts, in their order.

    ``labels[i]`` is the predicted class of text ``i`` (None where the text is empty after
    normalisation), ``probabilities[i, j]`` the probability of class ``classes[j]`` (NaN for an
    empty text), ``status[i]`` ``"ok"`` or ``"empty_text"``.
    """

    classes: list[str]
    labels: list[str | None]
    probabilities: np.ndarray
    status: list[str]
    threshold: float | None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        probs = self.probabilities[i]
        return {"label": self.labels[i], "status": self.status[i],
                "probabilities": {c: (None if np.isnan(p) else float(p)) for c, p in zip(self.classes, probs)}}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self[i] for i in range(len(self)))

    def to_records(self) -> list[dict[str, Any]]:
        """One JSON-ready dict per text: label, status, probability per class."""
        return list(self)


class Bundle:
    """A loaded, verified bundle: encodes texts exactly as training did and predicts their classes.

    Load with :func:`owntrain.bundle.load_bundle`. The model is in memory; the bundle's files are no longer needed.
    """

    def __init__(self, *, path: Path, kind: str, manifest: dict[str, Any], labels: dict[str, Any],
                 preprocessing: dict[str, Any], metrics: dict[str, Any], settings: "EncodingSettings",
                 encoder: "Encoder", model: "keras.Model", warnings: list[str]) -> None:
        self.path = path
        self.kind = kind
        self.manifest = manifest
        self.labels_record = labels
        self.preprocessing = preprocessing
        self.metrics = metrics
        self.settings = settings
        self.encoder = encoder
        self.model = model
        self.warnings = warnings
        self.classes: list[str] = list(labels["labels"])
        self.threshold: float | None = labels.get("threshold")
        self.batch_size = DEFAULTS.predict_batch_size
        self._batching: str | None = None
        self._plan: _PadStatePlan | None = None
        self._fns: dict[str, Any] = {}

    def __repr__(self) -> str:
        return (f"Bundle({str(self.path)!r}, classes={self.classes}, lang={self.settings.text.lang!r}, "
                f"fingerprint={self.fingerprint[:12]!r})")

    @property
    def fingerprint(self) -> str:
        """The manifest's digest: the same for every copy of this exact bundle."""
        return str(self.manifest.get("digest", ""))

    @property
    def text_columns(self) -> list[str] | None:
        """The text column(s) training read (scoring looks for them first), when known."""
        cols = self.preprocessing.get("text_columns")
        return list(cols) if isinstance(cols, list) and cols else None

    # -- encoding

    def normalize(self, texts: Iterable[Any]) -> list[str]:
        """Each text normalised as ingest does (None and NaN count as empty)."""
        from owntrain.normalize import normalize_text

        out = []
        for i, text in enumerate(texts):
            if text is None or (isinstance(text, float) and text != text):
                out.append("")
            elif isinstance(text, str):
                out.append(normalize_text(text))
            else:
                raise InputError(f"Text number {i} is a {type(text).__name__} ({text!r:.60}), expected a str.")
        return out

    def encode(self, normalized: Sequence[str]) -> list[np.ndarray]:
        """START + ids of each (already normalised, non-empty) text, truncated to max_len, unpadded
        (followed by its bigram ids when the bundle uses them)."""
        from owntrain.encoding import encode_texts

        return encode_texts(list(normalized), self.settings, self.encoder)

    # -- prediction

    @property
    def batching(self) -> str:
        """How :meth:`predict_encoded` batches sequences: ``masked``, ``pad_state`` or ``fixed``.

        ``masked``: the model masks padding, so batches are sorted by length and padded only to
        their own longest sequence. ``pad_state``: the recipe's unmasked Embedding -> LSTM -> Dense
        with padding at the start; batches sorted by length start from the state the LSTM
        reaches after the padding they leave out (see :class:`_PadStatePlan`), which gives the
        fixed-length result over far fewer steps. ``fixed``: every sequence padded to ``max_len``,
        exactly as in training. The first two are chosen only when they reproduce ``fixed`` on a
        check batch; set this attribute to ``"fixed"`` to force the plain way.
        """
        if self._batching is None:
            self._batching = self._choose_batching()
        return self._batching

    @batching.setter
    def batching(self, mode: str) -> None:
        if mode not in ("fixed", "masked", "pad_state"):
            raise InputError(f"batching must be 'fixed', 'masked' or 'pad_state', got {mode!r}.")
        if mode == "masked" and not _masks_padding(self.model):
            raise InputError("This bundle's model does not mask padding; use batching 'fixed'.")
        if mode == "pad_state":
            self._plan = self._plan or _PadStatePlan.build(self.model, self.settings)
            if self._plan is None:
                raise InputError("This bundle's model is not the recipe's pre-padded LSTM; use batching 'fixed'.")
        self._batching = mode

    @property
    def variable_length(self) -> bool:
        """True when batches are padded to their own length rather than to ``max_len``."""
        return self.batching != "fixed"

    def _choose_batching(self) -> str:
        if _masks_padding(self.model):
            return "masked" if self._reproduces_fixed("masked") else "fixed"
        self._plan = _PadStatePlan.build(self.model, self.settings)
        if self._plan is not None and self._reproduces_fixed("pad_state"):
            return "pad_state"
        self._plan = None
        return "fixed"

    def _reproduces_fixed(self, mode: str) -> bool:
        """Whether ``mode`` gives the fixed-length probabilities on random sequences of mixed lengths."""
        max_len = self.settings.seq_len
        high = max(2, min(int(self.encoder.size), _embedding_rows(self.model) or self.encoder.size))
        rng = np.random.default_rng(0)
        lengths = sorted({1, 2, max(1, max_len // 3), max(1, max_len - 1), max_len})
        seqs = [rng.integers(1, high, size=n).astype(np.int32) for n in lengths]
        fixed = self._run_batch("fixed", seqs)
        try:
            other = self._run_batch(mode, seqs)
        except Exception:  # a model this shortcut does not fit: keep the plain way
            return False
        return bool(np.allclose(other, fixed, rtol=1e-4, atol=1e-5))

    def _fn(self, mode: str) -> Any:
        """The compiled model call of a batching mode (built once)."""
        if mode not in self._fns:
            import tensorflow as tf

            model = self.model
            if mode == "pad_state":
                assert self._plan is not None
                self._fns[mode] = self._plan.function()
            else:
                length = self.settings.seq_len if mode == "fixed" else None
                self._fns[mode] = tf.function(lambda x: model(x, training=False), autograph=False,
                                              reduce_retracing=True,
                                              input_signature=[tf.TensorSpec([None, length], tf.int32)])
        return self._fns[mode]

    def _pad(self, seqs: Sequence[np.ndarray], length: int) -> np.ndarray:
        from owntrain.vocab import pad_sequences

        return pad_sequences(seqs, maxlen=length, padding=self.settings.padding, truncating=self.settings.truncating)

    def _run_batch(self, mode: str, chunk: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities of one batch of encoded sequences (each at most seq_len long)."""
        max_len = self.settings.seq_len
        if mode == "fixed":
            raw = self._fn(mode)(self._pad(chunk, max_len))
        elif mode == "masked":
            longest = max(len(s) for s in chunk)
            raw = self._fn(mode)(self._pad(chunk, bucket_length(longest, max_len)))
        else:
            assert self._plan is not None
            raw = self._plan.run(self._fn(mode), chunk)
        return _as_class_probabilities(np.asarray(raw, dtype=np.float64))

    def predict_encoded(self, seqs: Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities for encoded sequences: ``(len(seqs), n_classes)`` float64.

        Sequences are batched as :attr:`batching` says: sorted by length and padded to each
        batch's own longest where that gives the same result, else padded to ``max_len``.
        """
        n = len(seqs)
        out = np.empty((n, len(self.classes)), dtype=np.float64)
        if n == 0:
            return out
        mode = self.batching
        order = np.arange(n) if mode == "fixed" else np.argsort([len(s) for s in seqs], kind="stable")
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            out[idx] = self._run_batch(mode, [seqs[i] for i in idx])
        return out

    def predict_proba(self, texts: Iterable[Any]) -> np.ndarray:
        """Probability of each class for each text; NaN rows for texts that are empty after normalisation."""
        normalized = self.normalize(texts)
        return self._proba_normalized(normalized)

    def _proba_normalized(self, normalized: Sequence[str]) -> np.ndarray:
        proba = np.full((len(normalized), len(self.classes)), np.nan, dtype=np.float64)
        keep = [i for i, t in enumerate(normalized) if t]
        step = 4096
        for start in range(0, len(keep), step):
            part = keep[start:start + step]
            proba[part] = self.predict_encoded(self.encode([normalized[i] for i in part]))
        return proba

    def decide(self, proba: np.ndarray) -> list[str | None]:
        """The predicted class of each probability row (None for a NaN row)."""
        from owntrain.evaluate import predict_ids

        p = np.asarray(proba, dtype=np.float64)
        empty = np.isnan(p).any(axis=1) if p.size else np.zeros(len(p), dtype=bool)
        ids = predict_ids(np.where(np.isnan(p), 0.0, p), self.threshold) if len(p) else np.zeros(0, dtype=np.int64)
        return [None if e else self.classes[int(i)] for i, e in zip(ids, empty)]

    def predict(self, texts: Iterable[Any]) -> Predictions:
        """Predicted label and class probabilities for each text, in order.

        Texts are normalised, tokenized and encoded exactly as in training. A text that is empty
        after normalisation gets no label (None), NaN probabilities and status ``empty_text``.
        """
        normalized = self.normalize(texts)
        proba = self._proba_normalized(normalized)
        labels = self.decide(proba)
        status = ["ok" if t else "empty_text" for t in normalized]
        return Predictions(list(self.classes), labels, proba, status, self.threshold)


def _as_class_probabilities(raw: np.ndarray) -> np.ndarray:
    """One column per class: a single sigmoid output becomes ``[1 - p, p]``."""
    if raw.ndim == 2 and raw.shape[1] == 1:
        p = np.clip(raw[:, 0], 0.0, 1.0)
        return np.stack([1.0 - p, p], axis=1)
    return raw


def _masks_padding(model: "keras.Model") -> bool:
    """True when the model accepts any sequence length and an embedding masks id 0.

    nbngram's naive-Bayes embeddings do not mask (padding's ratio is 0, so it adds nothing);
    the predictor's ``_reproduces_fixed`` checks the result either way before masked batches are used.
    """
    try:
        shape = model.inputs[0].shape
        if len(shape) != 2 or shape[1] is not None:
            return False
        embeddings = [layer for layer in model.layers if layer.__class__.__name__ == "Embedding"]
        return any(getattr(layer, "mask_zero", False) for layer in embeddings)
    except (AttributeError, IndexError, TypeError):  # pragma: no cover - unusual models keep fixed length
        return False


def _embedding_rows(model: "keras.Model") -> int | None:
    for layer in model.layers:
        if layer.__class__.__name__ == "Embedding":
            return int(layer.input_dim)
    return None


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


class _PadStatePlan:
    """An exact shortcut for the recipe's unmasked Embedding -> LSTM -> Dense on pre-padded input.

    Without masking the LSTM reads every padding step, and a pre-padded sequence starts with
    ``max_len - L`` of them. Those steps are the same for every text, so the state after ``n``
    padding steps, ``s_n``, depends on ``n`` alone. A batch padded only to its own longest length
    ``Lb`` and started from ``s_(max_len - Lb)`` instead of zeros brings each of its texts to
    ``s_(max_len - L)`` before its first token: the state it has in the fixed-length run. The
    outputs are the fixed-length outputs (to float rounding), computed over ``Lb`` steps instead of
    ``max_len``. The states ``s_0 .. s_max_len`` are computed once, in numpy, from the weights.
    """

    def __init__(self, embedding: Any, lstm: Any, head: list[Any], max_len: int, truncating: str) -> None:
        self.embedding, self.lstm, self.head, self.max_len = embedding, lstm, head, max_len
        self.truncating = truncating
        self.units = int(lstm.units)
        self.h, self.c = self._pad_states()

    @classmethod
    def build(cls, model: "keras.Model", settings: "EncodingSettings") -> "_PadStatePlan | None":
        """The plan for ``model``, or None when it is not that architecture with padding at the start."""
        if settings.padding != "pre":
            return None
        core = [layer for layer in model.layers if layer.__class__.__name__ not in ("InputLayer", "Dropout")]
        if [layer.__class__.__name__ for layer in core] != ["Embedding", "LSTM", "Dense"]:
            return None
        embedding, lstm, dense = core
        cell = getattr(lstm, "cell", None)
        if (getattr(embedding, "mask_zero", True) or lstm.go_backwards or lstm.return_sequences
                or lstm.return_state or lstm.stateful or cell is None or not cell.use_bias
                or getattr(cell.activation, "__name__", "") != "tanh"
                or getattr(cell.recurrent_activation, "__name__", "") != "sigmoid"):
            return None
        return cls(embedding, lstm, [dense], int(settings.max_len), settings.truncating)

    def _pad_states(self) -> tuple[np.ndarray, np.ndarray]:
        kernel, recurrent, bias = (np.asarray(w, dtype=np.float32) for w in self.lstm.cell.get_weights())
        pad_vector = np.asarray(self.embedding.get_weights()[0][0], dtype=np.float32)
        x = pad_vector @ kernel + bias
        u = self.units
        h = np.zeros((self.max_len + 1, u), dtype=np.float32)
        c = np.zeros((self.max_len + 1, u), dtype=np.float32)
        for n in range(1, self.max_len + 1):
            z = x + h[n - 1] @ recurrent
            i, f, g, o = _sigmoid(z[:u]), _sigmoid(z[u:2 * u]), np.tanh(z[2 * u:3 * u]), _sigmoid(z[3 * u:])
            c[n] = f * c[n - 1] + i * g
            h[n] = o * np.tanh(c[n])
        return h, c

    def function(self) -> Any:
        """The compiled call: (ids, h0, c0) -> model output."""
        import tensorflow as tf

        embedding, lstm, head = self.embedding, self.lstm, self.head

        def call(ids: Any, h0: Any, c0: Any) -> Any:
            y = lstm(embedding(ids), initial_state=[h0, c0], training=False)
            for layer in head:
                y = layer(y)
            return y

        spec = tf.TensorSpec([None, self.units], tf.float32)
        return tf.function(call, autograph=False, reduce_retracing=True,
                           input_signature=[tf.TensorSpec([None, None], tf.int32), spec, spec])

    def run(self, fn: Any, chunk: Sequence[np.ndarray]) -> Any:
        from owntrain.vocab import pad_sequences

        longest = min(self.max_len, max(len(s) for s in chunk))
        ids = pad_sequences(chunk, maxlen=longest, padding="pre", truncating=self.truncating)
        skipped = self.max_len - longest
        n = len(chunk)
        h0 = np.repeat(self.h[skipped][None, :], n, axis=0)
        c0 = np.repeat(self.c[skipped][None, :], n, axis=0)
        return fn(ids, h0, c0)
