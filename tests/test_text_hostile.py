"""Hostile text through the text pipeline: tokenize, build a vocabulary, encode, pad, decode.

Random Unicode (combining marks, right-to-left text and overrides, emoji sequences, NUL and other
controls, lone surrogates, byte-order marks, every newline spaCy and Python know) in several
tokenizer languages: never a traceback, ids always in range, decode never fails on ids an
encoder produced, and a clear InputError (nothing else) for ids it did not.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from owntrain.encoding import EncodingSettings, encode_texts, encoder_from_dict
from owntrain.errors import InputError
from owntrain.normalize import normalize_text
from owntrain.text import TextSettings, tokenize
from owntrain.vocab import INDEX_FROM, PAD, RESERVED, START, UNK, HashEncoder, Vocabulary, pad_sequences

EXAMPLES = 150
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NASTY = st.sampled_from(["\u0301", "e\u0301", "\u200f", "\u202e", "\u202c", "\u061c", "🙂", "👩‍👩‍👧", "🇩🇪", "\x00",
                         "\x1f", "\x7f", "\x85", "\r", "\n", "\r\n", "\u2028", "\u2029", "\t", "\ufeff", "\ufffd",
                         "\ud800", "\udfff", "ß", "ẞ", "İ", "Σ", "ﬁ", "<br />", "&amp;", "&#0;", "...", "--", ":)",
                         "שלום", "مرحبا", "这部电影", "Straße", "l'été", "don't", "U.S.A.", "3,5", "€10", " "])
ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)
TEXT = st.lists(st.one_of(ANY_TEXT, NASTY), max_size=8).map("".join)
TEXTS = st.lists(TEXT, max_size=12)
LANGS = st.sampled_from(["en", "de", "xx", "ar", "zh"])
TEXT_SETTINGS = st.builds(TextSettings, lang=LANGS, lowercase=st.booleans(), keep_punct=st.booleans())


def _is_surrogate(ch: str) -> bool:
    return "\ud800" <= ch <= "\udfff"


@SETTINGS
@given(texts=TEXTS, text_settings=TEXT_SETTINGS, normalized=st.booleans())
def test_tokenize_never_fails(texts: list[str], text_settings: TextSettings, normalized: bool):
    if normalized:
        texts = [normalize_text(t) for t in texts]
    docs = list(tokenize(texts, text_settings))
    assert len(docs) == len(texts)
    for doc in docs:
        for token in doc:
            assert isinstance(token, str) and token and not token.isspace()
            assert not any(_is_surrogate(ch) for ch in token)  # spaCy cannot hold them; they became spaces
            if text_settings.lowercase:
                assert token == token.lower()


@SETTINGS
@given(train=st.lists(TEXT, min_size=1, max_size=12), new=TEXTS, text_settings=TEXT_SETTINGS,
       top_words=st.integers(5, 60), min_df=st.integers(1, 3), max_len=st.integers(1, 30),
       padding=st.sampled_from(["pre", "post"]), truncating=st.sampled_from(["pre", "post"]),
       normalized=st.booleans())
def test_vocabulary_encode_pad_decode_on_random_unicode(train, new, text_settings, top_words, min_df, max_len,
                                                        padding, truncating, normalized):
    if normalized:
        train, new = [normalize_text(t) for t in train], [normalize_text(t) for t in new]
    settings_ = EncodingSettings(text=text_settings, top_words=top_words, min_df=min_df, max_len=max_len,
                                 padding=padding, truncating=truncating)
    vocab = Vocabulary.build(tokenize(train, text_settings), top_words=top_words, min_df=min_df)
    assert vocab.size <= top_words
    assert all(df >= min_df for df in vocab.doc_counts)
    # the vocabulary survives its JSON form (what a bundle's vocab.json holds)
    again = encoder_from_dict(json.loads(json.dumps(vocab.to_dict(), ensure_ascii=False)))
    assert again == vocab

    seqs = encode_texts(train + new, settings_, vocab)
    assert len(seqs) == len(train) + len(new)
    docs = list(tokenize(train + new, text_settings))
    for seq, doc in zip(seqs, docs):
        assert seq.dtype == np.int32 and 1 <= len(seq) <= max_len
        assert ((seq >= 0) & (seq < vocab.size)).all()
        assert PAD not in seq and RESERVED not in seq and (seq[1:] != START).all()
        if len(doc) + 1 <= max_len or truncating == "post":
            assert seq[0] == START
        decoded = vocab.decode_tokens(seq)
        assert len(decoded) == len(seq)
        known = [t if t in vocab else "<UNK>" for t in ["<START>", *doc]]
        kept = known[-len(seq):] if truncating == "pre" else known[:len(seq)]
        assert decoded == [("<START>" if i == START else t) for i, t in zip(seq, kept)]
        assert isinstance(vocab.decode(seq), str)

    padded = pad_sequences(seqs, maxlen=max_len, padding=padding, truncating=truncating)
    assert padded.shape == (len(seqs), max_len) and padded.dtype == np.int32
    for row, seq in zip(padded, seqs):
        content = row[row != PAD]
        assert (content == seq).all()  # START and token ids are never 0, so the padding is exactly the zeros
        assert isinstance(vocab.decode(row), str)
    assert encode_texts(train + new, settings_, vocab)[0].tolist() == seqs[0].tolist()  # deterministic


@SETTINGS
@given(texts=TEXTS, text_settings=TEXT_SETTINGS, buckets=st.integers(5, 10_000), max_len=st.integers(1, 30))
def test_hash_encoder_on_random_unicode(texts, text_settings, buckets, max_len):
    encoder = HashEncoder(buckets)
    settings_ = EncodingSettings(text=text_settings, encoder="hash", hash_buckets=buckets, max_len=max_len)
    for seq in encode_texts(texts, settings_, encoder):
        assert 1 <= len(seq) <= max_len
        assert ((seq == START) | ((seq >= INDEX_FROM) & (seq < buckets))).all()
        assert isinstance(encoder.decode(seq), str)
    fresh = HashEncoder(buckets)  # no memo: the same ids from the hash alone
    assert [s.tolist() for s in encode_texts(texts, settings_, fresh)] == \
           [s.tolist() for s in encode_texts(texts, settings_, encoder)]


@SETTINGS
@given(train=st.lists(TEXT, min_size=1, max_size=6), ids=st.lists(st.integers(-2**40, 2**40) | st.integers(-3, 80),
                                                                  max_size=30))
def test_decode_of_any_ids_is_text_or_a_clear_error(train, ids):
    vocab = Vocabulary.build(tokenize([normalize_text(t) for t in train], TextSettings()), top_words=60, min_df=1)
    for encoder in (vocab, HashEncoder(50)):
        in_range = all(0 <= i < encoder.size for i in ids)
        try:
            text = encoder.decode(ids)
        except InputError as exc:
            assert not in_range and "outside this encoder's ids" in str(exc)
        else:
            assert in_range and isinstance(text, str)
            assert len(encoder.decode_tokens(ids)) == len(ids)
        assert isinstance(encoder.decode(np.asarray([i for i in ids if 0 <= i < encoder.size], dtype=np.int64)), str)


def test_raw_text_with_lone_surrogates_tokenizes_like_its_normalised_form():
    raw = ["ein \ud800 Test", "\udfffgreat\ud800film\udc00", "😀\ud83d"]
    settings_ = TextSettings(lang="de")
    assert list(tokenize(raw, settings_)) == list(tokenize([normalize_text(t) for t in raw], settings_))
    assert list(tokenize(raw, settings_))[1] == ["great", "film"]
    # and the hash encoder hashes any token, even one holding a lone surrogate
    assert 4 <= HashEncoder(100).id_of("\ud800") < 100


def test_not_a_str_is_a_clear_error():
    with pytest.raises(InputError, match="Text number 1 is bytes"):
        list(tokenize(["fine", b"bytes"], TextSettings()))
    with pytest.raises(InputError, match="Text number 0 is NoneType"):
        encode_texts([None], EncodingSettings(), Vocabulary.build([["a"]], min_df=1))
