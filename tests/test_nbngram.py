"""The nbngram architecture: naive-Bayes log-count ratios, the model's two terms, fit, resume, bundle."""

from __future__ import annotations

import json
import math
import zipfile

import numpy as np
import pytest

from owntrain.errors import InputError
from owntrain.model import NB_C, ModelSpec, build_model, nb_l2, nb_log_ratios

SMALL = dict(ngram_buckets=256, embedding_dim=8, epochs=2, min_df=1, max_len=40)


def spec(n_classes: int = 2, vocab_size: int = 6) -> ModelSpec:
    return ModelSpec(arch="nbngram", vocab_size=vocab_size, n_classes=n_classes, embedding_dim=3, units=1,
                     dropout=0.3, max_len=10)


def test_log_ratios_count_each_text_once_per_id_with_add_one_smoothing():
    # id 3 appears twice in the first class-1 text: it still counts once for that text
    seqs = [np.array([1, 3, 3, 4]), np.array([1, 3]), np.array([1, 5])]
    y = np.array([1, 1, 0])
    r = nb_log_ratios(seqs, y, 6)
    p = np.array([0, 2, 0, 2, 1, 0]) + 1.0   # class-1 texts holding each id, plus alpha
    q = np.array([0, 1, 0, 0, 0, 1]) + 1.0   # class-0 texts
    expected = np.zeros(6)                   # padding (id 0): in neither total, ratio 0
    expected[1:] = np.log(p[1:] / p[1:].sum()) - np.log(q[1:] / q[1:].sum())
    np.testing.assert_allclose(r, expected, rtol=1e-6)
    assert r.dtype == np.float32 and r[3] > 0 > r[5]
    # a padded matrix (fixed batching) gives the same ratios: padding is id 0, whose ratio is 0
    padded = np.array([[1, 3, 3, 4], [0, 0, 1, 3], [0, 0, 1, 5]])
    np.testing.assert_allclose(nb_log_ratios(padded, y, 6), r, rtol=1e-6)


def test_l2_factor_is_liblinears_c_per_training_row():
    assert nb_l2(1000) == pytest.approx(1 / (2 * NB_C * 1000))
    assert nb_l2(0) == pytest.approx(1 / (2 * NB_C))


def test_two_class_output_is_the_ngram_head_plus_the_ratio_weighted_sum():
    ratios = np.array([0.0, 0.5, -1.0, 2.0, 0.25, -0.75], dtype=np.float32)
    model = build_model(spec(), learning_rate=0.01, nb_ratios=ratios, nb_l2=1e-4)
    assert not model.get_layer("nb_ratio").trainable
    np.testing.assert_array_equal(model.get_layer("nb_ratio").get_weights()[0][:, 0], ratios)
    w = np.array([0.0, 1.0, 2.0, -0.5, 3.0, 0.1], dtype=np.float32)
    model.get_layer("nb_weight").set_weights([w[:, None]])
    x = np.array([[0, 0, 3, 3, 4], [3, 4, 3, 0, 0], [0, 0, 0, 0, 5]], dtype=np.int32)
    p = np.asarray(model(x, training=False))[:, 0]
    # the ngram head alone: the model with every naive-Bayes weight at zero
    model.get_layer("nb_weight").set_weights([np.zeros((6, 1), np.float32)])
    head = np.asarray(model(x, training=False))[:, 0]
    logit = np.log(p / (1 - p)) - np.log(head / (1 - head))
    # each occurrence counts (id 3 twice), padding adds nothing wherever it is
    nb = [2 * 2.0 * -0.5 + 0.25 * 3.0, 2 * 2.0 * -0.5 + 0.25 * 3.0, -0.75 * 0.1]
    np.testing.assert_allclose(logit, nb, atol=1e-4)
    np.testing.assert_allclose(p[0], p[1], atol=1e-6)


def test_two_classes_need_the_ratios_of_the_right_size():
    with pytest.raises(InputError, match="naive-Bayes ratios"):
        build_model(spec(), learning_rate=0.01)
    with pytest.raises(InputError, match="vocab_size 6"):
        build_model(spec(), learning_rate=0.01, nb_ratios=np.zeros(5))


def test_three_classes_are_the_ngram_model():
    model = build_model(spec(n_classes=3), learning_rate=0.01)
    names = [layer.__class__.__name__ for layer in model.layers]
    assert names == ["InputLayer", "Embedding", "GlobalAveragePooling1D", "Dropout", "Dense"]


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")  # saved before any training step
def test_the_ratios_are_saved_as_weights_and_load_in_safe_mode(tmp_path):
    from owntrain.bundle import check_model_file
    from owntrain.model import load_model

    ratios = np.linspace(-3, 3, 5000).astype(np.float32)
    ratios[0] = 0
    model = build_model(spec(vocab_size=5000), learning_rate=0.01, nb_ratios=ratios, nb_l2=1e-4)
    path = tmp_path / "m.keras"
    model.save(str(path))
    with zipfile.ZipFile(path) as zf:
        config = zf.read("config.json")
    assert len(config) < 20_000, "the ratios belong in the weights file, not in config.json"
    assert "Dot" in check_model_file(path)
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.get_layer("nb_ratio").get_weights()[0][:, 0], ratios)
    assert not loaded.get_layer("nb_ratio").trainable
    reg = loaded.get_layer("nb_weight").embeddings_regularizer
    assert reg is not None and reg.get_config()["l2"] == pytest.approx(1e-4)
    x = np.array([[0, 4, 4999, 17]], dtype=np.int32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-7)


def test_fit_nbngram_trains_the_weights_keeps_the_ratios_and_the_bundle_scores_like_fit(make_workspace):
    import pandas as pd

    from owntrain.bundle import load_bundle
    from owntrain.encoding import EncodingSettings, encode_texts, encoder_from_dict
    from owntrain.model import load_model
    from owntrain.train import fit

    ws = make_workspace(("neg", "pos"), 300)
    result = fit(ws, **SMALL)  # the default architecture
    assert result.model["arch"] == "nbngram"
    model = load_model(result.model_path)
    df = pd.read_parquet(ws / "dataset.parquet")
    train = df[df["split"] == "train"]
    settings = EncodingSettings.from_dict(result.encoding)
    enc = encoder_from_dict(result.encoder)
    seqs = encode_texts(train["text"].tolist(), settings, enc)
    y = (train["label"] == "pos").to_numpy().astype(int)
    # the ratios are the training split's, unchanged by training; the weights moved
    expected = nb_log_ratios(seqs, y, result.model["vocab_size"])
    np.testing.assert_allclose(model.get_layer("nb_ratio").get_weights()[0][:, 0], expected, rtol=1e-6)
    assert np.count_nonzero(model.get_layer("nb_weight").get_weights()[0]) > 0
    l2 = model.get_layer("nb_weight").embeddings_regularizer.get_config()["l2"]
    assert l2 == pytest.approx(nb_l2(len(train)), rel=1e-5)

    card = (result.bundle_dir / "MODEL_CARD.md").read_text()
    assert "Architecture `nbngram`" in card and "naive-Bayes" in card
    assert json.loads((result.bundle_dir / "manifest.json").read_text())["format_version"] == 2
    bundle = load_bundle(result.bundle_dir)
    assert bundle.batching == "masked"
    test = df[df["split"] == "test"]
    labels = bundle.predict(test["text"].tolist()).labels
    acc = float(np.mean(np.array(labels) == test["label"].to_numpy()))
    assert acc == pytest.approx(result.metrics["test"]["accuracy"], abs=1e-6)
    assert acc > 0.8


@pytest.mark.parametrize("batching", ["bucket", "fixed"])
def test_nbngram_resume_matches_an_uninterrupted_run(make_workspace, batching):
    from owntrain.train import fit

    ws = make_workspace(("neg", "pos"), 200, name="a")
    first = fit(ws, **{**SMALL, "epochs": 1, "batching": batching})
    resumed = fit(ws, resume=True, epochs=2)
    assert resumed.resumed_from_epoch == 1 and resumed.epochs_completed == 2
    straight = fit(make_workspace(("neg", "pos"), 200, name="b"), **{**SMALL, "batching": batching})
    assert first.history["loss"][0] == straight.history["loss"][0]
    assert np.allclose(resumed.history["val_loss"], straight.history["val_loss"], rtol=1e-6)
    assert resumed.metrics["test"]["confusion_matrix"] == straight.metrics["test"]["confusion_matrix"]
    assert all(math.isfinite(v) for v in resumed.history["val_loss"])


def test_nbngram_with_three_classes_fits_as_ngram(make_workspace):
    from owntrain.model import load_model
    from owntrain.train import fit

    ws = make_workspace(("a", "b", "c"), 300)
    result = fit(ws, **{**SMALL, "epochs": 1})
    names = [layer.name for layer in load_model(result.model_path).layers]
    assert result.model["arch"] == "nbngram" and "nb_ratio" not in names
    card = (result.bundle_dir / "MODEL_CARD.md").read_text()
    assert "naive-Bayes" not in card


def test_early_stopping_watches_the_validation_cross_entropy_without_the_weight_penalty(make_workspace):
    import pandas as pd

    from owntrain.encoding import EncodingSettings, encode_texts, encoder_from_dict
    from owntrain.model import load_model, predict_proba
    from owntrain.train import fit

    ws = make_workspace(("neg", "pos"), 300)
    result = fit(ws, **SMALL)
    settings = json.loads((result.run_dir / "settings.json").read_text())
    assert settings["training"]["early_stopping"] == "val_log_loss"
    history = result.history
    assert all(plain < loss for plain, loss in zip(history["val_log_loss"], history["val_loss"]))
    best = result.best_epoch
    assert history["val_log_loss"][best - 1] == min(history["val_log_loss"])
    # the logged value is the plain cross-entropy of the best model on the validation split
    df = pd.read_parquet(ws / "dataset.parquet")
    val = df[df["split"] == "validation"]
    enc_settings = EncodingSettings.from_dict(result.encoding)
    seqs = encode_texts(val["text"].tolist(), enc_settings, encoder_from_dict(result.encoder))
    p = predict_proba(load_model(result.model_path), seqs, batch_size=256, max_len=enc_settings.seq_len)[:, 1]
    y = (val["label"] == "pos").to_numpy()
    p = np.clip(p, 1e-7, 1 - 1e-7)
    xent = float(-np.mean(np.where(y, np.log(p), np.log(1 - p))))
    assert history["val_log_loss"][best - 1] == pytest.approx(xent, rel=1e-3)
