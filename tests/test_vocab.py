"""The IMDB id convention, checked against Keras where Keras defines it; hashing; padding."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from owntrain.errors import InputError
from owntrain.vocab import INDEX_FROM, PAD, RESERVED, START, UNK, HashEncoder, Vocabulary, pad_sequences

CORPUS = [
    "the cat sat on the mat".split(),
    "the dog sat".split(),
    "a cat and a dog".split(),
]


def test_constants():
    assert (PAD, START, UNK, RESERVED, INDEX_FROM) == (0, 1, 2, 3, 4)


def test_imdb_style_encoding_written_out_by_hand():
    # Counts: the 3; a, cat, dog, sat 2 (ties in alphabetical order); and, mat, on 1.
    # keras.datasets.imdb: word rank r (1 = most frequent) -> id r + index_from (3), start_char 1,
    # oov_char 2 for every id >= num_words.
    word_rank = {"the": 1, "a": 2, "cat": 3, "dog": 4, "sat": 5, "and": 6, "mat": 7, "on": 8}
    start_char, oov_char, index_from, num_words = 1, 2, 3, 10

    def keras_imdb(doc):
        x = [start_char] + [word_rank[w] + index_from for w in doc]
        return [w if w < num_words else oov_char for w in x]

    expected = [
        [1, 4, 6, 8, 2, 4, 2],  # the cat sat on the mat
        [1, 4, 7, 8],           # the dog sat
        [1, 5, 6, 9, 5, 7],     # a cat and a dog
    ]
    assert [keras_imdb(d) for d in CORPUS] == expected
    vocab = Vocabulary.build(CORPUS, top_words=num_words, min_df=1)
    assert [vocab.encode(d) for d in CORPUS] == expected
    assert vocab.size == num_words
    assert vocab.top(3) == [(4, "the", 3), (5, "a", 2), (6, "cat", 2)]


def test_identical_for_two_input_orders():
    docs = [d for d in CORPUS * 3] + [["x", "y"], ["y", "x", "z"]]
    shuffled = docs[:]
    random.Random(0).shuffle(shuffled)
    a = Vocabulary.build(docs, min_df=1)
    b = Vocabulary.build(reversed(shuffled), min_df=1)
    assert a == b
    assert a.to_dict() == b.to_dict()


words = st.sampled_from(["the", "a", "film", "Straße", "été", "好", "x", "y", "z", "10"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(words, max_size=12), max_size=15), st.integers(5, 12), st.integers(1, 3), st.randoms())
def test_order_invariance_and_id_range(docs, top_words, min_df, rnd):
    vocab = Vocabulary.build(docs, top_words=top_words, min_df=min_df)
    shuffled = docs[:]
    rnd.shuffle(shuffled)
    assert Vocabulary.build(shuffled, top_words=top_words, min_df=min_df) == vocab
    assert vocab.size <= top_words
    for doc in docs:
        ids = vocab.encode(doc)
        assert ids[0] == START
        assert all(0 < i < vocab.size and i not in (PAD, RESERVED) for i in ids)


def test_min_df_leaves_out_a_name_in_one_document():
    docs = [["Schmidt"] * 10 + ["good"], ["good", "film"], ["film", "good"]]
    vocab = Vocabulary.build(docs, min_df=2)
    assert "Schmidt" not in vocab
    assert "Schmidt" not in json.dumps(vocab.to_dict())  # the name does not travel in the bundle
    assert vocab.encode(["Schmidt", "good"]) == [START, UNK, vocab.id_of("good")]
    assert Vocabulary.build(docs, min_df=1).id_of("Schmidt") == INDEX_FROM  # most frequent without min_df


def test_top_words_cap():
    docs = [[f"w{i:02d}"] * (50 - i) for i in range(40)] * 2
    vocab = Vocabulary.build(docs, top_words=10)
    assert vocab.size == 10 and vocab.n_tokens == 6
    assert [t for _, t, _ in vocab.top()] == ["w00", "w01", "w02", "w03", "w04", "w05"]
    assert vocab.encode(["w05", "w06", "w39"]) == [START, 9, UNK, UNK]
    small = Vocabulary.build([["a", "b"]] * 2, top_words=5000)
    assert small.size == INDEX_FROM + 2  # size is min(top_words, 4 + tokens)


@pytest.mark.parametrize("bad", [{"top_words": 4}, {"top_words": 2.5}, {"min_df": 0}, {"top_words": True}])
def test_bad_build_arguments(bad):
    with pytest.raises(InputError):
        Vocabulary.build(CORPUS, **bad)


def test_decode_encode_round_trip_and_names():
    vocab = Vocabulary.build(CORPUS, min_df=1)
    doc = "the dog sat on a mat".split()
    assert vocab.decode(vocab.encode(doc)) == "<START> " + " ".join(doc)
    assert vocab.decode([0, 0, 1, 2, 3, 4]) == "<PAD> <PAD> <START> <UNK> <RESERVED> the"
    assert vocab.decode(np.array([1, 4], dtype=np.int32)) == "<START> the"
    with pytest.raises(InputError, match="outside this encoder's ids 0..11"):
        vocab.decode([1, 12])
    with pytest.raises(InputError):
        vocab.decode([-1])


def test_save_load_json(tmp_path):
    vocab = Vocabulary.build([["Straße", "été", "好"], ["Straße", "été"]], min_df=1)
    path = tmp_path / "vocab.json"
    vocab.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["kind"] == "vocab" and data["tokens"] == ["Straße", "été", "好"]  # tie: code point order
    assert "Straße" in path.read_text(encoding="utf-8")  # UTF-8, not escaped
    loaded = Vocabulary.load(path)
    assert loaded == vocab and loaded.token_counts == vocab.token_counts
    assert loaded.token_to_id["Straße"] == INDEX_FROM


@pytest.mark.parametrize("damage", [
    lambda d: d.update(kind="other"),
    lambda d: d.pop("tokens"),
    lambda d: d.update(counts=[1]),
    lambda d: d.update(tokens=["a", "a", "b"]),
    lambda d: d.update(format_version=99),
])
def test_damaged_vocabulary_is_refused(damage):
    d = Vocabulary.build(CORPUS, min_df=1).to_dict()
    damage(d)
    with pytest.raises(InputError):
        Vocabulary.from_dict(d)


def test_load_broken_file(tmp_path):
    (tmp_path / "v.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="Cannot read"):
        Vocabulary.load(tmp_path / "v.json")
    with pytest.raises(InputError, match="does not exist"):
        Vocabulary.load(tmp_path / "missing.json")


# ----------------------------------------------------------------------------- hashing


def test_hash_ids_clear_of_reserved_and_below_size():
    enc = HashEncoder(7)
    ids = enc.encode([f"w{i}" for i in range(500)])
    assert ids[0] == START and set(ids[1:]) == {4, 5, 6}
    assert enc.size == 7


def test_hash_ids_pinned():
    # Bundles rely on these ids never changing between owntrain versions.
    assert HashEncoder(5000).encode(["the", "ß"]) == [1, 1738, 1687]


def test_hash_stable_across_processes():
    tokens = ["the", "film", "Straße", "été", "好", "qu'"]
    code = (
        "import json, sys; from owntrain.vocab import HashEncoder; "
        "print(json.dumps(HashEncoder(1000).encode(json.loads(sys.argv[1]))))"
    )
    runs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code, json.dumps(tokens)], env=env,
                             capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout))
    assert runs[0] == runs[1] == HashEncoder(1000).encode(tokens)


def test_hash_decode_and_round_trip():
    enc = HashEncoder(100)
    ids = enc.encode(["a", "b"])
    assert enc.decode(ids) == f"<START> <h{ids[1]}> <h{ids[2]}>"
    assert HashEncoder.from_dict(json.loads(json.dumps(enc.to_dict()))) == enc
    with pytest.raises(InputError):
        enc.decode([100])
    with pytest.raises(InputError):
        HashEncoder(4)


# ----------------------------------------------------------------------------- padding

SEQS = [[], [5], [1, 2], [1, 4, 5, 6], list(range(1, 9)), [7, 7, 7]]


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("max_len", [None, 1, 3, 4, 8, 12])
def test_pad_sequences_equals_keras(padding, truncating, max_len):
    keras = pytest.importorskip("keras")
    expected = keras.utils.pad_sequences(SEQS, maxlen=max_len, padding=padding, truncating=truncating, value=0)
    got = pad_sequences(SEQS, max_len, padding=padding, truncating=truncating)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, expected)


def test_pad_sequences_value_arrays_and_keras_spelling():
    keras = pytest.importorskip("keras")
    arrays = [np.array(s, dtype=np.int32) for s in SEQS]
    np.testing.assert_array_equal(
        pad_sequences(arrays, maxlen=5, value=9), keras.utils.pad_sequences(SEQS, maxlen=5, value=9)
    )


def test_pad_sequences_errors():
    with pytest.raises(InputError, match="padding"):
        pad_sequences(SEQS, 3, padding="both")
    with pytest.raises(InputError, match="truncating"):
        pad_sequences(SEQS, 3, truncating="middle")
    with pytest.raises(InputError, match="max_len"):
        pad_sequences(SEQS, 0)
    assert pad_sequences([], 4).shape == (0, 4)
