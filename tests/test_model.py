"""The Keras model, the input pipeline and word vectors, on random integer arrays."""

from __future__ import annotations

import numpy as np
import pytest

from owntrain.errors import InputError
from owntrain.model import (
    ModelSpec, build_model, load_model, predict_proba, read_word_vectors, steps_per_epoch, targets, train_dataset,
)


def _spec(**kw):
    base = dict(arch="lstm", vocab_size=50, n_classes=2, embedding_dim=4, units=4, dropout=0.0, max_len=12)
    base.update(kw)
    return ModelSpec(**base)


def _ids(n=20, max_len=12, vocab=50, seed=0):
    return np.random.default_rng(seed).integers(0, vocab, (n, max_len)).astype("int32")


def test_default_lstm_is_the_recipe():
    import keras

    keras.utils.set_random_seed(0)
    model = build_model(_spec(vocab_size=5000, embedding_dim=32, units=100, max_len=500), learning_rate=1e-3)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["InputLayer", "Embedding", "LSTM", "Dense"]
    assert model.get_layer("output").units == 1
    assert model.get_layer("output").activation.__name__ == "sigmoid"
    assert model.loss == "binary_crossentropy"
    # Embedding 5000*32 + LSTM 4*(100*(32+100)+100) + Dense 101, as in the recipe's model.summary()
    assert model.count_params() == 160_000 + 53_200 + 101


@pytest.mark.parametrize("arch", ["lstm", "bilstm", "flatten"])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_each_arch_predicts_probabilities(arch, n_classes):
    import keras

    keras.utils.set_random_seed(0)
    model = build_model(_spec(arch=arch, n_classes=n_classes, dropout=0.1 if arch == "bilstm" else 0.0),
                        learning_rate=1e-2)
    p = predict_proba(model, _ids(), batch_size=8)
    assert p.shape == (20, n_classes)
    assert np.allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert (p >= 0).all()
    if n_classes > 2:
        assert model.loss == "sparse_categorical_crossentropy"


def test_flatten_is_embedding_flatten_dense():
    model = build_model(_spec(arch="flatten"), learning_rate=1e-3)
    assert [type(layer).__name__ for layer in model.layers] == ["InputLayer", "Embedding", "Flatten", "Dense", "Dense"]


def test_bad_specs_raise_input_errors():
    with pytest.raises(InputError, match="Unknown architecture 'gru'.*lstm, bilstm, flatten"):
        _spec(arch="gru")
    with pytest.raises(InputError, match="dropout"):
        _spec(dropout=1.0)
    with pytest.raises(InputError, match="units"):
        _spec(units=0)
    with pytest.raises(InputError, match="two classes"):
        _spec(n_classes=1)


def test_save_and_load_in_safe_mode_round_trip(tmp_path):
    model = build_model(_spec(), learning_rate=1e-3)
    x = _ids()
    model.fit(x, targets(np.arange(20) % 2, 2), epochs=1, verbose=0)  # builds the optimizer state too
    model.save(tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras")
    assert np.allclose(predict_proba(model, x, batch_size=8), predict_proba(again, x, batch_size=8))


def test_embedding_matrix_initialises_the_embedding():
    matrix = np.arange(50 * 4, dtype="float32").reshape(50, 4) / 1000
    model = build_model(_spec(), learning_rate=1e-3, embedding_matrix=matrix)
    assert np.allclose(model.get_layer("embedding").get_weights()[0], matrix)
    with pytest.raises(InputError, match="shape"):
        build_model(_spec(), learning_rate=1e-3, embedding_matrix=matrix[:, :3])


def _epoch_orders(ds, steps, n_epochs):
    rows = [x[:, 0].tolist() for x, _ in ds.take(steps * n_epochs).as_numpy_iterator()]
    return [sum(rows[e * steps:(e + 1) * steps], []) for e in range(n_epochs)]


def test_train_dataset_shuffles_per_epoch_and_resumes_identically():
    n, bs = 10, 4
    x = np.arange(n, dtype="int32")[:, None].repeat(3, axis=1)
    y = targets(np.arange(n) % 2, 2)
    steps = steps_per_epoch(n, bs)
    assert steps == 3
    full = _epoch_orders(train_dataset(x, y, batch_size=bs, seed=7, first_epoch=0, epochs=3), steps, 3)
    for order in full:
        assert sorted(order) == list(range(n))  # every row once per epoch
    assert full[0] != full[1]  # reshuffled
    resumed = _epoch_orders(train_dataset(x, y, batch_size=bs, seed=7, first_epoch=1, epochs=3), steps, 2)
    assert resumed == full[1:]
    other = _epoch_orders(train_dataset(x, y, batch_size=bs, seed=8, first_epoch=0, epochs=1), steps, 1)
    assert other[0] != full[0]


def test_train_dataset_carries_sample_weights():
    x = _ids(6)
    y = targets(np.array([0, 1, 0, 1, 0, 0]), 2)
    w = np.array([1, 2, 1, 2, 1, 1], dtype="float64")
    batches = list(train_dataset(x, y, batch_size=6, seed=0, first_epoch=0, epochs=1, sample_weight=w))
    xb, yb, wb = (t.numpy() for t in batches[0])
    assert np.allclose(wb, np.where(yb == 1, 2.0, 1.0))


def test_read_word_vectors_with_header_and_lowercase_fallback(tmp_path):
    path = tmp_path / "v.vec"
    path.write_text("4 3\nthe 1 2 3\nFilm 4 5 6\ngood 7 8 9\nunused 0 0 1\n", encoding="utf-8")
    token_ids = {"the": 4, "film": 5, "bad": 6, "good": 7}
    matrix, report = read_word_vectors(path, token_ids, vocab_size=8, seed=0)
    assert matrix.shape == (8, 3)
    assert np.allclose(matrix[4], [1, 2, 3]) and np.allclose(matrix[5], [4, 5, 6]) and np.allclose(matrix[7], [7, 8, 9])
    assert np.allclose(matrix[0], 0)
    assert np.abs(matrix[6]).max() <= 0.05  # not covered: small random
    assert (report.dim, report.vectors_read, report.tokens, report.covered) == (3, 4, 4, 3)
    assert report.coverage == pytest.approx(0.75)


def test_read_word_vectors_glove_without_header(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("the 0.1 0.2\nfilm 0.3 0.4\n", encoding="utf-8")
    matrix, report = read_word_vectors(path, {"film": 4}, vocab_size=5)
    assert report.dim == 2 and report.covered == 1
    assert np.allclose(matrix[4], [0.3, 0.4])


def test_read_word_vectors_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_word_vectors(tmp_path / "missing.vec", {}, 5)
    bad = tmp_path / "bad.vec"
    bad.write_text("the 1 2 3\nfilm 1 2\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 2: expected a word and 3 numbers"):
        read_word_vectors(bad, {"film": 4}, 5)


# --------------------------------------------------------------------------- bucket batching


def _ragged(n=70, max_len=40, vocab=50, seed=0):
    rng = np.random.default_rng(seed)
    return [np.concatenate([[1], rng.integers(4, vocab, int(rng.integers(0, max_len)))]).astype("int32")
            for _ in range(n)]


def test_bucket_batches_group_similar_lengths_and_depend_only_on_seed_and_epoch():
    from owntrain.model import bucket_batches

    lengths = np.random.default_rng(1).integers(1, 400, 1000)
    batches = bucket_batches(lengths, batch_size=8, seed=3, epoch=2)
    assert len(batches) == steps_per_epoch(1000, 8)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))  # every row once
    # Sorted within chunks of 128 rows: a batch spans a small part of the length range (random: ~300).
    spread = np.median([lengths[b].max() - lengths[b].min() for b in batches])
    assert spread < 60
    again = bucket_batches(lengths, batch_size=8, seed=3, epoch=2)
    assert all((a == b).all() for a, b in zip(batches, again))
    other = bucket_batches(lengths, batch_size=8, seed=3, epoch=3)
    assert any(len(a) != len(b) or (a != b).any() for a, b in zip(batches, other))


def test_bucket_train_dataset_pads_each_batch_to_its_own_length_and_resumes_identically():
    seqs = _ragged()
    y = targets(np.arange(len(seqs)) % 2, 2)
    w = np.where(np.arange(len(seqs)) % 2, 2.0, 1.0)
    steps = steps_per_epoch(len(seqs), 8)

    def epochs(first, last):
        ds = train_dataset(seqs, y, batch_size=8, seed=5, first_epoch=first, epochs=last, sample_weight=w,
                           padding="pre", max_len=40)
        return list(ds.as_numpy_iterator())

    full = epochs(0, 2)
    assert len(full) == 2 * steps
    widths = set()
    for xb, yb, wb in full:
        assert xb.shape[1] % 16 == 0 or xb.shape[1] == 40
        widths.add(xb.shape[1])
        longest = int((xb != 0).sum(axis=1).max())
        assert longest <= xb.shape[1] < longest + 16  # padded to its longest, rounded up to 16
        assert (xb[:, -1] != 0).all()  # pre-padding: every row ends with a real id
        assert np.allclose(wb, np.where(yb == 1, 2.0, 1.0))
    assert len(widths) > 1
    resumed = epochs(1, 2)
    assert all((a[0] == b[0]).all() and (a[1] == b[1]).all() for a, b in zip(resumed, full[steps:]))


def test_masked_predictions_in_bucket_mode_equal_fixed_padding_in_the_original_order():
    import keras

    from owntrain.vocab import pad_sequences

    keras.utils.set_random_seed(0)
    model = build_model(_spec(max_len=40), learning_rate=1e-3, mask_zero=True)
    seqs = _ragged(n=70)
    bucketed = predict_proba(model, seqs, batch_size=8, padding="pre", max_len=40)
    fixed = predict_proba(model, pad_sequences(seqs, maxlen=40, padding="pre"), batch_size=8)
    assert bucketed.shape == (70, 2)
    assert np.allclose(bucketed, fixed, atol=1e-5)
    assert np.abs(bucketed - bucketed[::-1]).max() > 1e-4  # the rows really differ, so order is tested
    post = predict_proba(model, seqs, batch_size=8, padding="post", max_len=40)
    assert np.allclose(post, predict_proba(model, pad_sequences(seqs, maxlen=40, padding="post"), batch_size=8),
                       atol=1e-5)


def test_eval_dataset_in_bucket_mode_holds_every_row_with_its_label():
    from owntrain.model import eval_dataset

    seqs = _ragged(n=30)
    y = np.arange(30).astype("float32")
    got = list(eval_dataset(seqs, y, batch_size=8, max_len=40).as_numpy_iterator())
    assert sorted(np.concatenate([yb for _, yb in got]).tolist()) == list(range(30))
    for xb, yb in got:
        for row, label in zip(xb, yb):
            assert (row[row != 0] == seqs[int(label)]).all()
