"""Metric maths against small cases worked out by hand, and `evaluate` on a trained run."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from owntrain import evaluate as ev


def test_confusion_matrix_rows_true_columns_predicted():
    cm = ev.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_precision_recall_f1_by_hand():
    # class 0: tp 1, predicted 2, support 2 -> P 1/2, R 1/2, F1 1/2
    # class 1: tp 1, predicted 2, support 1 -> P 1/2, R 1,   F1 2/3
    # class 2: tp 2, predicted 2, support 3 -> P 1,   R 2/3, F1 4/5
    cm = ev.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    p, r, f1, support = ev.precision_recall_f1(cm)
    assert np.allclose(p, [0.5, 0.5, 1.0])
    assert np.allclose(r, [0.5, 1.0, 2 / 3])
    assert np.allclose(f1, [0.5, 2 / 3, 0.8])
    assert support.tolist() == [2, 1, 3]


def test_undefined_precision_is_zero_not_nan():
    cm = ev.confusion_matrix([0, 0, 1], [0, 0, 0], 2)  # class 1 never predicted
    p, r, f1, _ = ev.precision_recall_f1(cm)
    assert p[1] == 0.0 and r[1] == 0.0 and f1[1] == 0.0
    assert not np.isnan(f1).any()


def _auc_by_pairs(y, s):
    pos = [b for a, b in zip(y, s) if a == 1]
    neg = [b for a, b in zip(y, s) if a == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_roc_auc_by_hand():
    # pairs (pos, neg): (0.8,0.1) win, (0.8,0.4) win, (0.35,0.1) win, (0.35,0.4) loss -> 3/4
    assert ev.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert ev.roc_auc([0, 1], [0.3, 0.3]) == pytest.approx(0.5)  # a tie counts half
    assert ev.roc_auc([1, 1, 0], [0.9, 0.2, 0.1]) == pytest.approx(1.0)
    assert ev.roc_auc([1, 1], [0.9, 0.2]) is None


def test_roc_auc_matches_pair_counting_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200), 1)  # many ties
    assert ev.roc_auc(y, s) == pytest.approx(_auc_by_pairs(y, s))


def test_choose_threshold_separable_picks_the_gap_nearest_half():
    y = [0, 0, 0, 1, 1, 1]
    p = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]
    t, macro = ev.choose_threshold(y, p)
    assert macro == pytest.approx(1.0)
    assert t == pytest.approx(0.5)  # midpoint between 0.3 and 0.7
    assert (ev.predict_ids(np.c_[1 - np.array(p), p], t) == y).all()


def test_choose_threshold_shifts_when_the_model_is_biased():
    # Every probability is low, but ranks separate the classes perfectly: 0.5 would call all negative.
    y = [0, 0, 1, 1]
    p = [0.05, 0.1, 0.2, 0.3]
    t, macro = ev.choose_threshold(y, p)
    assert t == pytest.approx(0.15) and macro == pytest.approx(1.0)


def test_choose_threshold_is_optimal_among_all_cuts():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    p = np.clip(y * 0.3 + rng.random(60) * 0.7, 0, 1)
    t, macro = ev.choose_threshold(y, p)
    proba = np.c_[1 - p, p]
    got = ev.classification_metrics(y, proba, ["a", "b"], threshold=t)["macro_f1"]
    assert got == pytest.approx(macro, abs=1e-6)
    for cut in np.r_[0.0, np.unique(p), 1.01]:
        other = ev.classification_metrics(y, proba, ["a", "b"], threshold=cut)["macro_f1"]
        assert other <= macro + 1e-6


def test_classification_metrics_two_classes():
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.6, 0.4, 0.9])
    m = ev.classification_metrics(y, np.c_[1 - p1, p1], ["neg", "pos"], threshold=0.5)
    assert m["n"] == 4
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["confusion_matrix"] == [[1, 1], [1, 1]]
    assert m["per_class"]["pos"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["macro_f1"] == pytest.approx(0.5)
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["threshold"] == 0.5
    expected_loss = -np.mean(np.log([0.9, 0.4, 0.4, 0.9]))
    assert m["log_loss"] == pytest.approx(expected_loss, abs=1e-6)


def test_classification_metrics_multi_class_uses_argmax():
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.5, 0.4], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    m = ev.classification_metrics([0, 1, 1, 2], proba, ["a", "b", "c"])
    assert m["confusion_matrix"] == [[1, 0, 0], [0, 1, 1], [1, 0, 0]]
    assert m["accuracy"] == pytest.approx(0.5)
    assert "roc_auc" not in m


def test_majority_baseline():
    b = ev.majority_baseline({"neg": 30, "pos": 70}, [1, 1, 0, 1], ["neg", "pos"])
    assert b["label"] == "pos"
    assert b["accuracy"] == pytest.approx(0.75)
    # F1(pos) = 2*3/(2*3+1) = 6/7, F1(neg) = 0
    assert b["macro_f1"] == pytest.approx(3 / 7, abs=1e-6)


# --------------------------------------------------------------------------- evaluate() and the CLI on a trained run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import synthetic_rows, write_workspace
    from owntrain.train import fit

    root = tmp_path_factory.mktemp("trained") / "ws"
    write_workspace(root, synthetic_rows(("neg", "pos"), 300), ("neg", "pos"))
    result = fit(root, arch="flatten", max_len=40, embedding_dim=8, units=8, epochs=2, batch_size=32,
                 learning_rate=1e-2, min_df=1)
    return root, result


def test_evaluate_on_the_test_split_reproduces_fit_metrics(trained):
    root, result = trained
    got = ev.evaluate(workspace=root)
    assert got.run_id == result.run_id
    assert got.source.startswith("test split")
    for key in ("n", "accuracy", "macro_f1", "confusion_matrix", "roc_auc", "threshold"):
        assert got.metrics[key] == result.metrics["test"][key], key
    assert got.metrics["baseline"]["accuracy"] == result.metrics["baseline"]["accuracy"]


def test_evaluate_on_a_labelled_file(trained, tmp_path):
    import pandas as pd

    from conftest import synthetic_rows

    root, result = trained
    path = tmp_path / "more.csv"
    rows = synthetic_rows(("neg", "pos"), 60, seed=9)
    pd.DataFrame({"review": [t for t, _ in rows], "sentiment": [lab for _, lab in rows]}).to_csv(path, index=False)
    got = ev.evaluate(path, workspace=root, run=result.run_id)
    assert got.metrics["n"] == 60 and got.source == str(path)
    assert got.metrics["accuracy"] > 0.5
    # An explicit threshold of 0 calls every row positive.
    everything = ev.evaluate(path, workspace=root, threshold=0.0)
    assert everything.metrics["per_class"]["pos"]["recall"] == 1.0


def test_evaluate_refuses_labels_the_model_does_not_know(trained, tmp_path):
    root, _ = trained
    path = tmp_path / "odd.csv"
    path.write_text("text,label\ngreat film,positive\nawful film,neg\n", encoding="utf-8")
    with pytest.raises(ev.ValidationError, match="not trained on: 'positive'.*knows: neg, pos"):
        ev.evaluate(path, workspace=root)


def test_evaluate_unknown_run(trained):
    from owntrain.errors import WorkspaceError

    root, _ = trained
    with pytest.raises(WorkspaceError, match="No run 'nope'"):
        ev.evaluate(workspace=root, run="nope")


def test_cli_evaluate_prints_a_table_and_json(trained):
    from typer.testing import CliRunner

    from owntrain.cli import app

    root, result = trained
    runner = CliRunner()
    out = runner.invoke(app, ["evaluate", "--workspace", str(root)])
    assert out.exit_code == 0, out.output
    assert "precision" in out.output and "macro-F1" in out.output and "baseline" in out.output
    assert result.run_id in out.output
    js = runner.invoke(app, ["evaluate", "--workspace", str(root), "--json"])
    assert json.loads(js.output)["metrics"]["accuracy"] == result.metrics["test"]["accuracy"]


def test_cli_fit_prints_epochs_and_metrics(tmp_path):
    from typer.testing import CliRunner

    from conftest import synthetic_rows, write_workspace
    from owntrain.cli import app

    root = write_workspace(tmp_path / "ws", synthetic_rows(("neg", "pos"), 120), ("neg", "pos"))
    args = ["fit", "-w", str(root), "--max-len", "30", "--embedding-dim", "4", "--units", "4", "--epochs", "2",
            "--min-df", "1", "--arch", "flatten"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    assert "epoch 1/2" in out.output and "epoch 2/2" in out.output and "val_loss" in out.output
    assert "Test split" in out.output and "confusion matrix" in out.output and "TensorBoard" in out.output
    bad = CliRunner().invoke(app, ["fit", "-w", str(root), "--arch", "cnn"])
    assert bad.exit_code == 2 and "Unknown architecture 'cnn'" in bad.output
    assert "Traceback" not in bad.output


def test_evaluate_a_bucket_run_batches_by_length_and_reproduces_fit_metrics(tmp_path):
    from conftest import synthetic_rows, write_workspace
    from owntrain.train import fit, load_finished_run
    from owntrain.workspace import Workspace

    root = write_workspace(tmp_path / "ws", synthetic_rows(("neg", "pos"), 240), ("neg", "pos"))
    result = fit(root, arch="lstm", batching="bucket", max_len=40, embedding_dim=8, units=8, epochs=1, batch_size=32,
                 learning_rate=1e-2, min_df=1)
    loaded = load_finished_run(Workspace.at(root))
    assert loaded.batching == "bucket"
    x = loaded.encode(["great film", "the film was a film and it was awful and boring", "dull"])
    assert isinstance(x, list) and [len(s) for s in x] == [3, 12, 2]  # unpadded: START + ids
    got = ev.evaluate(workspace=root)
    for key in ("n", "accuracy", "macro_f1", "confusion_matrix", "threshold"):
        assert got.metrics[key] == result.metrics["test"][key], key
    assert got.metrics["roc_auc"] == pytest.approx(result.metrics["test"]["roc_auc"], abs=1e-9)
