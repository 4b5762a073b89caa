"""The classic baseline: TF-IDF of word 1-2-grams + logistic regression (scikit-learn).

One fixed setting for every dataset, not tuned on any of them:
``TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)`` (scikit-learn's own
tokenization: lowercase, words of two or more word characters) and
``LogisticRegression(C=1.0, max_iter=1000)`` (lbfgs; multinomial for more than two classes).
scikit-learn is a benchmark-only dependency (``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

VECTORIZER = dict(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
CLASSIFIER = dict(C=1.0, max_iter=1000)


def run(train_texts: Sequence[str], train_labels: Sequence[str], test_texts: Sequence[str],
        test_labels: Sequence[str], *, model_path: str | None = None) -> dict[str, Any]:
    """Fit on the training texts, predict the test texts; accuracy, macro-F1 and timings.

    ``predict_encoded_per_second`` times the classifier on the ready TF-IDF matrix,
    ``score_per_second`` vectorising the raw test texts plus the classifier.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    t0 = time.perf_counter()
    vectorizer = TfidfVectorizer(**VECTORIZER)
    x_train = vectorizer.fit_transform(train_texts)
    classifier = LogisticRegression(**CLASSIFIER)
    classifier.fit(x_train, list(train_labels))
    t1 = time.perf_counter()
    x_test = vectorizer.transform(test_texts)
    t2 = time.perf_counter()
    y_pred = classifier.predict(x_test)
    t3 = time.perf_counter()

    size = None
    if model_path:
        import os
        import pickle

        if hasattr(vectorizer, "stop_words_"):  # the pruned terms: only for inspection (scikit-learn's advice)
            del vectorizer.stop_words_
        with open(model_path, "wb") as fh:
            pickle.dump((vectorizer, classifier), fh, protocol=pickle.HIGHEST_PROTOCOL)
        size = os.path.getsize(model_path)
    n = len(test_texts)
    return {
        "accuracy": float(accuracy_score(list(test_labels), y_pred)),
        "macro_f1": float(f1_score(list(test_labels), y_pred, average="macro")),
        "train_rows": len(train_texts),
        "test_rows": n,
        "epochs": None,
        "train_seconds": t1 - t0,
        "fit_wall_seconds": t1 - t0,
        "train_samples_per_second": len(train_texts) / (t1 - t0),
        "predict_rows": n,
        "predict_encoded_per_second": n / max(t3 - t2, 1e-9),
        "score_per_second": n / max(t3 - t1, 1e-9),
        "artifact_bytes": size,
        "features": len(vectorizer.vocabulary_),
    }
