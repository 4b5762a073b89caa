"""The plain Keras recipe owntrain grew from, written out as a reader of the original blog post would.

    Embedding(5000, 32) -> LSTM(100) -> Dense(1, sigmoid), sequences padded to 500, Adam,
    3 epochs, batch 64, no validation split

It is the reference row of the benchmark (bench/run.py), so it deliberately uses nothing from
owntrain; only the data loading around it is shared with the other systems. What a blog reader
has to write themselves, because ``keras.datasets.imdb`` hands them ready-made integer sequences:

* **Tokenization:** lowercase, HTML tags such as ``<br />`` replaced by a space, then the runs of
  ``[a-z0-9äöüß']`` are the words (``TOKEN`` below; enough for English and German, the languages
  of the benchmark). Everything else (punctuation, other letters) separates words.
* **Vocabulary:** the ``top_words - 3`` most frequent training words, ranked 1, 2, ... by
  frequency (ties in first-seen order), get ids ``rank + 3`` as in ``keras.datasets.imdb`` with
  ``index_from=3``: 0 padding, 1 START (prepended to every text), 2 unknown (any word outside
  the top ``top_words`` ids), 3 unused, 4 the most frequent word.
* **Sequences:** ``keras.utils.pad_sequences(maxlen=500)`` with Keras' defaults (pad and truncate
  at the start).
* **Output:** one sigmoid unit for two classes, a softmax over the classes for more (the 5-star
  task); labels are indexed in sorted order.

Predictions use ``model.predict`` with Keras' default batch size (32), as the blog's
``model.evaluate(X_test, y_test)`` does.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any, Sequence

import numpy as np

TOKEN = re.compile(r"[a-z0-9äöüß']+")
TAG = re.compile(r"<[^>]+>")
PAD, START, OOV, INDEX_FROM = 0, 1, 2, 3

TOP_WORDS = 5000
MAX_LEN = 500
EMBEDDING_DIM = 32
UNITS = 100
EPOCHS = 3
BATCH_SIZE = 64
SEED = 7


def tokenize(text: str) -> list[str]:
    """The recipe's words of one text (see the module docstring)."""
    return TOKEN.findall(TAG.sub(" ", text.lower()))


def build_word_index(texts: Sequence[str], top_words: int = TOP_WORDS) -> dict[str, int]:
    """Word -> id for the ``top_words - 3`` most frequent words: the most frequent has id 4."""
    counts = Counter(w for t in texts for w in tokenize(t))
    return {w: rank + INDEX_FROM for rank, (w, _) in enumerate(counts.most_common(top_words - INDEX_FROM - 1), 1)}


def encode(texts: Sequence[str], word_index: dict[str, int], max_len: int = MAX_LEN) -> np.ndarray:
    """START + word ids (unknown words -> 2), padded and truncated like keras.utils.pad_sequences."""
    import keras

    seqs = [[START] + [word_index.get(w, OOV) for w in tokenize(t)] for t in texts]
    return keras.utils.pad_sequences(seqs, maxlen=max_len)


def build_model(n_classes: int, top_words: int = TOP_WORDS) -> Any:
    import keras
    from keras import layers

    binary = n_classes == 2
    model = keras.Sequential([
        keras.Input(shape=(None,), dtype="int32"),
        layers.Embedding(top_words, EMBEDDING_DIM),
        layers.LSTM(UNITS),
        layers.Dense(1, activation="sigmoid") if binary else layers.Dense(n_classes, activation="softmax"),
    ])
    model.compile(loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
                  optimizer="adam", metrics=["accuracy"])
    return model


def run(train_texts: Sequence[str], train_labels: Sequence[str], test_texts: Sequence[str],
        test_labels: Sequence[str], *, epochs: int = EPOCHS, model_path: str | None = None) -> dict[str, Any]:
    """Train on the training texts, predict the test texts; accuracy, macro-F1 and timings.

    ``fit_wall_seconds`` covers everything from raw training texts to a trained model (vocabulary,
    encoding, ``model.fit``); ``train_seconds`` only ``model.fit``. Scoring is timed on the whole
    test set: ``predict`` on the pre-encoded arrays alone, and ``score`` from raw text (tokenize,
    encode, pad, predict). Both exclude one warm-up batch (building the predict function).
    """
    import keras
    from sklearn.metrics import accuracy_score, f1_score

    keras.utils.set_random_seed(SEED)
    classes = sorted(set(train_labels))
    index = {c: i for i, c in enumerate(classes)}
    y_train = np.array([index[c] for c in train_labels])
    y_test = np.array([index.get(c, -1) for c in test_labels])

    t0 = time.perf_counter()
    word_index = build_word_index(train_texts)
    x_train = encode(train_texts, word_index)
    model = build_model(len(classes))
    t1 = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=epochs, batch_size=BATCH_SIZE, verbose=2)
    t2 = time.perf_counter()

    model.predict(x_train[:32], verbose=0)  # warm-up: builds the predict function
    t3 = time.perf_counter()
    x_test = encode(test_texts, word_index)
    t4 = time.perf_counter()
    out = model.predict(x_test, verbose=0)
    t5 = time.perf_counter()
    y_pred = (out[:, 0] >= 0.5).astype(int) if len(classes) == 2 else out.argmax(axis=1)

    size = None
    if model_path:
        import json
        import os

        model.save(model_path)
        with open(model_path + ".word_index.json", "w", encoding="utf-8") as fh:
            json.dump(word_index, fh)
        size = os.path.getsize(model_path) + os.path.getsize(model_path + ".word_index.json")
    n = len(test_texts)
    return {
        "accuracy": float(accuracy_score(y_test, y_pred)),
        "macro_f1": float(f1_score(y_test, y_pred, average="macro")),
        "train_rows": len(train_texts),
        "test_rows": n,
        "epochs": epochs,
        "train_seconds": t2 - t1,
        "fit_wall_seconds": t2 - t0,
        "train_samples_per_second": len(train_texts) * epochs / (t2 - t1),
        "predict_rows": n,
        "predict_encoded_per_second": n / (t5 - t4),
        "score_per_second": n / (t5 - t3),
        "artifact_bytes": size,
        "history": {k: [float(v) for v in vals] for k, vals in history.history.items()},
    }
