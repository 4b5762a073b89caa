"""Encoding settings, texts to ids, the workspace vocabulary cache, and the IMDB check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from owntrain.config import DEFAULTS
from owntrain.encoding import (
    EncodingSettings,
    build_and_encode,
    build_encoder,
    bundle_encoder,
    encode_text,
    encode_texts,
    encoder_from_dict,
    encoder_to_dict,
    find_encoder,
    parse_ids,
    workspace_encoder,
)
from owntrain.errors import InputError, WorkspaceError
from owntrain.text import TextSettings, tokenize
from owntrain.vocab import START, UNK, HashEncoder, Vocabulary, pad_sequences
from owntrain.workspace import Workspace

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

TRAIN = [
    "The film was great, the acting was great.",
    "The film was awful. The plot was awful!",
    "A great story and a great cast.",
    "Awful film, awful story.",
]


def write_dataset(root: Path, rows: list[tuple[str, str, str]]) -> Workspace:
    """A workspace whose dataset.parquet holds (text, label, split) rows, as ingest writes it."""
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({
        "text": [t for t, _, _ in rows],
        "text_original": [t for t, _, _ in rows],
        "label": [lab for _, lab, _ in rows],
        "split": [s for _, _, s in rows],
        "source_file": "tiny.csv",
        "source_line": np.arange(2, len(rows) + 2, dtype="int64"),
    }).to_parquet(root / "dataset.parquet", index=False)
    return Workspace.at(root)


def test_settings_defaults_and_round_trip():
    s = EncodingSettings()
    assert (s.top_words, s.min_df, s.max_len, s.padding, s.truncating, s.encoder, s.hash_buckets) == (
        DEFAULTS.top_words, DEFAULTS.min_df, DEFAULTS.max_len, DEFAULTS.padding, DEFAULTS.truncating,
        DEFAULTS.encoder, DEFAULTS.hash_buckets,
    )
    assert s.text == TextSettings()
    custom = EncodingSettings(text=TextSettings(lang="de", keep_punct=True), top_words=100, max_len=20,
                              padding="post", truncating="post", encoder="hash", hash_buckets=77)
    d = custom.to_dict()
    assert d["text"] == {"lang": "de", "lowercase": True, "keep_punct": True}
    assert EncodingSettings.from_dict(d) == custom


@pytest.mark.parametrize("bad", [
    {"padding": "both"}, {"truncating": "x"}, {"encoder": "bpe"}, {"top_words": 3}, {"min_df": 0},
    {"max_len": 0}, {"hash_buckets": 4}, {"text": {"lang": "en"}},
])
def test_settings_refuse_bad_values(bad):
    with pytest.raises(InputError):
        EncodingSettings(**bad)


def test_settings_refuse_unknown_keys():
    with pytest.raises(InputError, match="Unknown encoding setting.*stemming"):
        EncodingSettings.from_dict({"stemming": True})


def test_encode_texts_ragged_start_first_not_padded():
    s = EncodingSettings(min_df=2)
    vocab = build_encoder(TRAIN, s)
    # four-way tie at count 4, broken by the token string
    assert vocab.top(4) == [(4, "awful", 4), (5, "great", 4), (6, "the", 4), (7, "was", 4)]
    seqs = encode_texts(["The great unseen film", ""], s, vocab)
    assert [a.dtype for a in seqs] == [np.int32, np.int32]
    assert seqs[0].tolist() == [START, 6, 5, UNK, vocab.id_of("film")]
    assert seqs[1].tolist() == [START]


@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("padding", ["pre", "post"])
def test_truncation_then_padding_equals_padding_full_sequences(truncating, padding):
    full_settings = EncodingSettings(min_df=1, max_len=1000)
    s = EncodingSettings(min_df=1, max_len=5, truncating=truncating, padding=padding)
    vocab = build_encoder(TRAIN, s)
    full = encode_texts(TRAIN, full_settings, vocab)
    cut = encode_texts(TRAIN, s, vocab)
    assert all(len(a) <= 5 for a in cut)
    np.testing.assert_array_equal(
        pad_sequences(cut, 5, padding, truncating), pad_sequences(full, 5, padding, truncating)
    )
    expected = full[0][-5:] if truncating == "pre" else full[0][:5]
    assert cut[0].tolist() == expected.tolist()


def test_decode_encode_gives_normalised_tokens_german_and_french():
    for lang, text in [("de", "Die Straße war GROSS, ÄRGER über Öl!"), ("fr", "L'homme qu'il aime, c'est l'été.")]:
        s = EncodingSettings(text=TextSettings(lang=lang), min_df=1)
        vocab = build_encoder([text], s)
        tokens = next(tokenize([text], s.text))
        assert vocab.decode(encode_text(text, s, vocab)) == " ".join(["<START>", *tokens])


def test_chinese_encoding():
    s = EncodingSettings(text=TextSettings(lang="zh"), min_df=2)
    vocab = build_encoder(["我喜欢这部电影。", "我不喜欢这个。"], s)
    assert vocab.decode(encode_text("我喜欢猫", s, vocab)) == "<START> 我 喜 欢 <UNK>"


@pytest.mark.parametrize("encoder", ["vocab", "hash"])
def test_build_and_encode_equals_the_two_steps(encoder):
    s = EncodingSettings(min_df=1, max_len=6, encoder=encoder)
    enc, seqs = build_and_encode(iter(TRAIN), s)
    assert enc == build_encoder(TRAIN, s)
    assert [a.tolist() for a in seqs] == [a.tolist() for a in encode_texts(TRAIN, s, enc)]
    assert all(a.dtype == np.int32 for a in seqs)


def test_hash_encoder_needs_no_texts():
    s = EncodingSettings(encoder="hash", hash_buckets=50)
    enc = build_encoder(iter(()), s)
    assert enc == HashEncoder(50)
    ids = encode_text("great film", s, enc)
    assert ids[0] == START and all(4 <= i < 50 for i in ids[1:])


def test_encoder_kind_must_match_settings():
    with pytest.raises(InputError, match="'hash' encoder but a 'vocab'"):
        encode_texts(["x"], EncodingSettings(encoder="hash"), build_encoder(TRAIN, EncodingSettings()))


def test_encoder_dict_round_trip():
    vocab = build_encoder(TRAIN, EncodingSettings())
    assert encoder_from_dict(encoder_to_dict(vocab)) == vocab
    assert encoder_from_dict(encoder_to_dict(HashEncoder(9))) == HashEncoder(9)
    with pytest.raises(InputError, match="Not an owntrain encoder"):
        encoder_from_dict({"kind": "bpe"})


def test_workspace_encoder_uses_train_split_and_caches(tmp_path, monkeypatch):
    rows = [(t, "x", "train") for t in TRAIN] + [("secret secret words", "x", "test")] * 3
    ws = write_dataset(tmp_path / "ws", rows)
    s = EncodingSettings(min_df=1)
    vocab = workspace_encoder(ws, s)
    assert "secret" not in vocab and vocab.n_docs == len(TRAIN)
    cached = list(ws.cache.glob("vocab-*.json"))
    assert len(cached) == 1

    import owntrain.encoding as encoding

    def fail(*args, **kwargs):
        raise AssertionError("rebuilt instead of reading the cache")

    monkeypatch.setattr(encoding, "build_encoder", fail)
    assert workspace_encoder(ws, s) == vocab
    assert workspace_encoder(ws, EncodingSettings(min_df=1, max_len=7, padding="post")) == vocab  # same key
    monkeypatch.undo()

    workspace_encoder(ws, EncodingSettings(min_df=2))
    assert len(list(ws.cache.glob("vocab-*.json"))) == 2  # other settings, other cache file
    write_dataset(tmp_path / "ws", rows + [("more great words", "x", "train")])
    assert workspace_encoder(ws, s).n_docs == len(TRAIN) + 1  # new data, new vocabulary


def test_workspace_encoder_rebuilds_damaged_cache(tmp_path):
    ws = write_dataset(tmp_path / "ws", [(t, "x", "train") for t in TRAIN])
    vocab = workspace_encoder(ws, EncodingSettings())
    (cache_file,) = ws.cache.glob("vocab-*.json")
    cache_file.write_text("{", encoding="utf-8")
    assert workspace_encoder(ws, EncodingSettings()) == vocab


def test_workspace_encoder_errors(tmp_path):
    with pytest.raises(WorkspaceError, match="owntrain ingest"):
        workspace_encoder(Workspace.at(tmp_path / "empty"), EncodingSettings())
    ws = write_dataset(tmp_path / "ws", [("only test", "x", "test")])
    with pytest.raises(WorkspaceError, match="no rows in the train split"):
        workspace_encoder(ws, EncodingSettings())
    assert workspace_encoder(ws, EncodingSettings(encoder="hash")) == HashEncoder()


def test_bundle_encoder_nested_or_flat(tmp_path):
    bundle = tmp_path / "bundle"
    assert bundle_encoder(bundle) is None
    vocab = build_encoder(TRAIN, EncodingSettings(min_df=1))
    vocab.save(bundle / "vocab.json")
    settings, enc = bundle_encoder(bundle)
    assert enc == vocab and settings == EncodingSettings()
    import json

    (bundle / "preprocessing.json").write_text(json.dumps(
        {"format_version": 1, "lang": "de", "lowercase": False, "max_len": 50, "normalisation": "NFC"}))
    settings, _ = bundle_encoder(bundle)
    assert settings.text == TextSettings(lang="de", lowercase=False) and settings.max_len == 50
    (bundle / "preprocessing.json").write_text(json.dumps(EncodingSettings(text=TextSettings(lang="fr")).to_dict()))
    assert bundle_encoder(bundle)[0].text.lang == "fr"


def test_find_encoder_prefers_bundle_unless_settings_given(tmp_path):
    ws = write_dataset(tmp_path / "ws", [(t, "x", "train") for t in TRAIN])
    assert find_encoder(ws).origin == "workspace"
    Vocabulary.build([["only", "bundle"]], min_df=1).save(ws.bundle / "vocab.json")
    assert find_encoder(ws).origin == "bundle"
    src = find_encoder(ws, min_df=1)
    assert src.origin == "workspace" and src.encoder.min_df == 1


def test_parse_ids():
    assert parse_ids("1 4, 2 [0]") == [1, 4, 2, 0]
    with pytest.raises(InputError, match="whole numbers"):
        parse_ids("1 four")


@pytest.mark.slow
def test_imdb_the_gets_id_4_and_decode_reads_like_keras():
    train = DATA / "imdb" / "train.csv"
    if not train.is_file():
        pytest.skip(f"IMDB data not found at {train} (../shared/data beside the repository)")
    texts = [t.replace("<br />", " ") for t in pd.read_csv(train)["text"]]
    s = EncodingSettings()
    vocab = build_encoder(texts, s)
    assert vocab.id_of("the") == 4
    assert vocab.size == 5000
    review = next(t for t in texts if len(t.split()) < 200)  # short enough to keep its START
    decoded = vocab.decode(encode_text(review, s, vocab))
    assert decoded.startswith("<START> ")
    tokens = next(tokenize([review], s.text))
    assert decoded.split()[1:] == [t if t in vocab else "<UNK>" for t in tokens]
