"""The ngram architecture: hashed bigram ids, their encoding, the model, fit, bundle and score."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from owntrain.encoding import EncodingSettings, _sequence_encoder, build_and_encode, encode_texts
from owntrain.errors import InputError
from owntrain.vocab import BigramHasher, Vocabulary

WORDS = ["a", "b", "c", "d"]


def vocab() -> Vocabulary:
    return Vocabulary.build([["a", "b", "c", "d", "a"]], top_words=100, min_df=1)


def test_bigram_ids_are_stable_across_processes_and_hash_seeds():
    ids = BigramHasher(1000, 10).ids(["gut", "nicht", "gut", "Straße", "\ud800x"]).tolist()
    code = ("from owntrain.vocab import BigramHasher;"
            "print(BigramHasher(1000, 10).ids(['gut', 'nicht', 'gut', 'Straße', '\\ud800x']).tolist())")
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed})
        assert json.loads(out.stdout) == ids
    assert len(ids) == 4 and all(10 <= i < 1010 for i in ids)
    # order matters: (gut, nicht) and (nicht, gut) are different pairs
    assert ids[0] != ids[1]


def test_bigram_ids_of_short_texts():
    h = BigramHasher(50, 8)
    assert h.ids([]).tolist() == [] and h.ids(["a"]).tolist() == []
    assert h.ids(["a", "b"]).dtype == np.int32
    with pytest.raises(InputError):
        BigramHasher(0, 8)


@pytest.mark.parametrize("side", ["pre", "post"])
def test_bigrams_follow_the_word_ids_of_the_kept_tokens(side):
    v = vocab()
    settings = EncodingSettings(max_len=5, ngram_buckets=100, truncating=side)
    encode = _sequence_encoder(settings, v)
    hasher = BigramHasher(100, v.size)
    short = ["a", "b", "c"]
    assert encode(short).tolist() == [1, *v.encode(short)[1:], *hasher.ids(short).tolist()]
    long = ["a", "b", "c", "d", "a", "b", "c"]
    kept = long[-5:] if side == "pre" else long[:4]  # pre: START is cut too; post: START + 4 words
    word_ids = v.encode(long)[-5:] if side == "pre" else v.encode(long)[:5]
    assert encode(long).tolist() == [*word_ids, *hasher.ids(kept).tolist()]
    assert len(encode(long)) <= settings.seq_len == 9
    assert all(v.size <= i < v.size + 100 for i in encode(long)[len(word_ids):])


def test_without_buckets_the_encoding_is_the_recipe():
    v = vocab()
    plain = EncodingSettings(max_len=5)
    assert plain.seq_len == 5 and plain.input_dim(v) == v.size
    assert _sequence_encoder(plain, v)(["a", "b"]).tolist() == [1, 4, 5]
    with_bigrams = EncodingSettings(max_len=5, ngram_buckets=64)
    assert with_bigrams.input_dim(v) == v.size + 64
    assert EncodingSettings.from_dict(with_bigrams.to_dict()) == with_bigrams
    with pytest.raises(InputError):
        EncodingSettings(ngram_buckets=-1)


def test_build_and_encode_matches_encode_texts_with_bigrams():
    texts = ["the film was good", "the film was not good at all", "bad", ""]
    settings = EncodingSettings(max_len=4, min_df=1, ngram_buckets=32)
    v, seqs = build_and_encode(texts, settings)
    assert [s.tolist() for s in seqs] == [s.tolist() for s in encode_texts(texts, settings, v)]


def test_ngram_model_is_a_masked_mean_of_embeddings():
    from owntrain.model import ModelSpec, build_model

    spec = ModelSpec(arch="ngram", vocab_size=50, n_classes=3, embedding_dim=4, units=1, dropout=0.3, max_len=10)
    model = build_model(spec, learning_rate=0.01)
    names = [layer.__class__.__name__ for layer in model.layers]
    assert names == ["InputLayer", "Embedding", "GlobalAveragePooling1D", "Dropout", "Dense"]
    assert model.get_layer("embedding").mask_zero
    x = np.array([[0, 0, 5, 7], [5, 7, 0, 0]], dtype=np.int32)
    short = np.array([[5, 7]], dtype=np.int32)
    p = np.asarray(model(x, training=False))
    # padding is masked, wherever it is: the same text padded differently gets the same probabilities
    np.testing.assert_allclose(p[0], p[1], atol=1e-6)
    np.testing.assert_allclose(p[0], np.asarray(model(short, training=False))[0], atol=1e-6)
    assert p.shape == (2, 3)


def test_fit_ngram_exports_a_version_2_bundle_that_scores_like_training(make_workspace, tmp_path):
    from owntrain.bundle import load_bundle
    from owntrain.train import fit

    ws = make_workspace(("neg", "pos"), 300)
    result = fit(ws, arch="ngram", ngram_buckets=512, embedding_dim=8, epochs=2, min_df=1, max_len=40)
    assert result.model["arch"] == "ngram"
    assert result.encoding["ngram_buckets"] == 512
    from owntrain.encoding import encoder_from_dict

    assert result.model["vocab_size"] == encoder_from_dict(result.encoder).size + 512
    manifest = json.loads((result.bundle_dir / "manifest.json").read_text())
    assert manifest["format_version"] == 2
    pre = json.loads((result.bundle_dir / "preprocessing.json").read_text())
    assert pre["ngram_buckets"] == 512
    card = (result.bundle_dir / "MODEL_CARD.md").read_text()
    assert "512 buckets" in card and "Architecture `ngram`" in card

    bundle = load_bundle(result.bundle_dir)
    assert bundle.batching == "masked"
    import pandas as pd

    df = pd.read_parquet(ws / "dataset.parquet")
    test = df[df["split"] == "test"]
    preds = bundle.predict(test["text"].tolist())
    acc = float(np.mean(np.array(preds.labels) == test["label"].to_numpy()))
    assert acc == pytest.approx(result.metrics["test"]["accuracy"], abs=1e-6)
    assert acc > 0.8  # the synthetic labels are learnable


def test_an_old_owntrain_refuses_a_version_2_bundle(make_workspace, monkeypatch):
    from owntrain import bundle as bundle_mod
    from owntrain.errors import BundleError
    from owntrain.train import fit

    ws = make_workspace(("neg", "pos"), 200)
    folder = fit(ws, arch="ngram", ngram_buckets=64, embedding_dim=4, epochs=1, min_df=1, max_len=20).bundle_dir
    monkeypatch.setattr(bundle_mod, "FORMAT_VERSION", 1)
    with pytest.raises(BundleError, match="Upgrade owntrain"):
        bundle_mod.load_bundle(folder)


def test_auto_buckets_fit_the_training_split_and_rehash_exactly(make_workspace):
    from owntrain.config import NGRAM_BUCKETS_MAX, NGRAM_BUCKETS_MIN
    from owntrain.encoding import EncodingSettings, encode_texts, encoder_from_dict
    from owntrain.train import fit

    import pandas as pd

    ws = make_workspace(("neg", "pos"), 300)
    events = []
    result = fit(ws, embedding_dim=4, epochs=1, min_df=1, max_len=40, progress=events.append)  # the default arch
    assert result.model["arch"] == "nbngram"
    buckets = result.encoding["ngram_buckets"]
    assert NGRAM_BUCKETS_MIN <= buckets < NGRAM_BUCKETS_MAX and buckets & (buckets - 1) == 0
    assert any("bigram buckets" in e.message for e in events)
    settings = EncodingSettings.from_dict(result.encoding)
    enc = encoder_from_dict(result.encoder)
    assert result.model["vocab_size"] == enc.size + buckets
    # the re-hashed training ids are exactly what encoding with the smaller count gives
    df = pd.read_parquet(ws / "dataset.parquet")
    texts = df[df["split"] == "train"]["text"].tolist()
    direct = encode_texts(texts, settings, enc)
    from owntrain import cache

    match = None
    for path in (ws / "cache").glob("encoded-*-train.npz"):
        seqs = cache.read_encoded(path, n_rows=len(texts), id_limit=enc.size + buckets, max_len=settings.seq_len)
        if seqs is not None and all(a.tolist() == b.tolist() for a, b in zip(seqs, direct)):
            match = path
    assert match is not None, "no cached training split equals a direct encoding with the chosen bucket count"
    # a second fit finds everything in the cache and picks the same count
    again = []
    second = fit(ws, embedding_dim=4, epochs=1, min_df=1, max_len=40, progress=again.append)
    assert second.encoding["ngram_buckets"] == buckets
    assert "Encoded splits read from the cache" in [e.message for e in again]


@pytest.mark.slow
def test_the_default_on_filmstarts_beats_the_majority_baseline_and_the_bundle_agrees(tmp_path):
    """Real German reviews (../shared/data/filmstarts_de): ingest, the default fit, the bundle."""
    from pathlib import Path

    from owntrain.bundle import load_bundle
    from owntrain.data import ingest
    from owntrain.train import fit

    src = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "filmstarts_de" / "reviews.csv"
    if not src.is_file():
        pytest.skip(f"filmstarts data not found at {src} (../shared/data beside the repository)")
    ws = tmp_path / "ws"
    ingest([src], workspace=ws, text_col="text", label_col="label")
    result = fit(ws, lang="de")
    assert result.model["arch"] == "nbngram" and result.encoding["ngram_buckets"] >= 2**16
    test = result.metrics["test"]
    assert test["accuracy"] > result.metrics["baseline"]["accuracy"] + 0.05  # 0.72 majority; 0.848 measured (bench, auto batch 32)
    import pandas as pd

    df = pd.read_parquet(ws / "dataset.parquet")
    part = df[df["split"] == "test"]
    labels = load_bundle(result.bundle_dir).predict(part["text"].tolist()).labels
    assert np.mean(np.array(labels) == part["label"].to_numpy()) == pytest.approx(test["accuracy"], abs=1e-6)


def test_auto_batch_size_gives_fifty_steps_an_epoch_between_32_and_256():
    from owntrain.config import auto_batch_size, auto_learning_rate

    assert auto_batch_size(22_224) == 256          # IMDB's training split: the tuned large-set setting
    assert auto_batch_size(12_800) == 256 and auto_batch_size(12_799) == 128
    assert auto_batch_size(6_920) == 128           # SST-2
    assert auto_batch_size(3_110) == 32            # filmstarts: 97 steps an epoch instead of 13 at 256
    assert auto_batch_size(10) == 32               # never below 32, however small the set
    for n in (3_200, 5_000, 9_000, 13_000, 40_000, 1_000_000):
        b = auto_batch_size(n)
        assert b & (b - 1) == 0 and 32 <= b <= 256
        assert b == 256 or n // b >= 50 > n // (2 * b)  # the largest power of two with 50 steps
    assert auto_learning_rate(256) == pytest.approx(0.02)
    assert auto_learning_rate(64) == pytest.approx(0.01)   # square-root scaling
    assert auto_learning_rate(32) == pytest.approx(0.02 / 8 ** 0.5, rel=1e-4)


def test_fit_resolves_auto_batch_and_rate_from_the_training_split_and_records_them(make_workspace):
    from owntrain.config import auto_batch_size, auto_learning_rate
    from owntrain.train import fit

    ws = make_workspace(("neg", "pos"), 300)
    small = fit(ws, embedding_dim=4, epochs=1, min_df=1, max_len=40)
    assert small.training["batch_size"] == 32 and small.training["learning_rate"] == pytest.approx(auto_learning_rate(32))
    settings = json.loads((small.run_dir / "settings.json").read_text())
    assert settings["training"]["batch_size"] == 32  # a resume trains with the same numbers, not "auto" again
    card = (small.bundle_dir / "MODEL_CARD.md").read_text()
    assert "batch 32" in card
    # a given batch size sets the rate by the same rule; a given rate is kept as it is
    given = fit(ws, embedding_dim=4, epochs=1, min_df=1, max_len=40, batch_size=64)
    assert (given.training["batch_size"], given.training["learning_rate"]) == (64, pytest.approx(0.01))
    rate = fit(ws, embedding_dim=4, epochs=1, min_df=1, max_len=40, learning_rate=0.003)
    assert (rate.training["batch_size"], rate.training["learning_rate"]) == (auto_batch_size(240), 0.003)
    # the recipe's architectures keep the recipe's fixed numbers
    lstm = fit(ws, arch="lstm", embedding_dim=4, units=4, epochs=1, min_df=1, max_len=40)
    assert (lstm.training["batch_size"], lstm.training["learning_rate"]) == (64, 0.001)


def test_an_invalid_given_batch_size_is_still_refused_with_auto_rate(make_workspace):
    from owntrain.train import fit

    ws = make_workspace(("neg", "pos"), 60)
    with pytest.raises(InputError, match="batch_size must be a positive whole number"):
        fit(ws, epochs=1, batch_size=0)
