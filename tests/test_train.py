"""End-to-end fits on tiny synthetic workspaces (seconds each): training, resume, reproducibility, errors."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from owntrain.errors import InputError, ValidationError, WorkspaceError
from owntrain.train import fit

TINY = dict(arch="lstm", max_len=40, embedding_dim=8, units=8, epochs=1, batch_size=32, learning_rate=1e-2, min_df=1)


def tiny(**kw):
    return {**TINY, **kw}


def test_two_class_fit_writes_the_run_folder(make_workspace):
    ws = make_workspace(("neg", "pos"), 300)
    events = []
    result = fit(ws, progress=events.append, **tiny(epochs=2))

    run = result.run_dir
    assert run.parent == ws / "runs"
    for name in ("settings.json", "encoder.json", "state.json", "history.json", "metrics.json", "model.keras"):
        assert (run / name).is_file(), name
    assert result.model_path == run / "model.keras"
    assert list((run / "checkpoints").glob("epoch-*.keras"))
    assert list((run / "logs" / "train").glob("events.out.tfevents.*"))

    assert result.labels == ["neg", "pos"]
    assert result.epochs_completed == 2 and result.resumed_from_epoch is None
    assert set(result.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(result.history["loss"]) == 2
    assert json.loads((run / "history.json").read_text()) == result.history
    assert 0.0 < result.threshold < 1.0
    assert result.model["arch"] == "lstm" and result.model["n_classes"] == 2
    assert result.encoding["max_len"] == 40 and result.encoder  # what a bundle export needs
    assert result.train_seconds > 0 and result.samples_per_second > 0

    m = result.metrics
    assert json.loads((run / "metrics.json").read_text()) == m
    test = m["test"]
    assert test["n"] == m["training"]["rows"]["test"] > 0
    assert set(test["per_class"]) == {"neg", "pos"}
    assert np.array(test["confusion_matrix"]).sum() == test["n"]
    assert 0.0 <= test["roc_auc"] <= 1.0
    assert test["threshold"] == m["threshold"] == result.threshold
    assert m["baseline"]["label"] in ("neg", "pos") and m["baseline"]["split"] == "test"

    stages = [e.stage for e in events]
    assert stages.count("epoch") == 2 and "evaluate" in stages and "encode" in stages
    last = [e for e in events if e.stage == "epoch"][-1]
    assert last.epoch == 2 and last.epochs == 2 and last.eta_seconds == 0 and "val_loss" in last.logs


def test_multi_class_uses_softmax_and_no_threshold(make_workspace):
    ws = make_workspace(("a", "b", "c"), 300)
    result = fit(ws, **tiny())
    assert result.model["n_classes"] == 3
    assert result.threshold is None
    test = result.metrics["test"]
    assert "roc_auc" not in test
    assert np.array(test["confusion_matrix"]).shape == (3, 3)
    from owntrain.model import load_model

    assert load_model(result.model_path).output_shape[-1] == 3


def test_flatten_learns_the_synthetic_task(make_workspace):
    ws = make_workspace(("neg", "pos"), 400)
    result = fit(ws, **tiny(arch="flatten", epochs=4))
    test = result.metrics["test"]
    assert result.model["arch"] == "flatten"
    assert test["accuracy"] >= 0.8 > result.metrics["baseline"]["accuracy"]


def test_two_identical_runs_give_identical_results(make_workspace):
    ws = make_workspace(("neg", "pos"), 200)
    first = fit(ws, **tiny(epochs=2))
    second = fit(ws, **tiny(epochs=2))
    assert first.run_id != second.run_id
    assert first.encoder == second.encoder
    assert first.history == second.history
    assert first.metrics["test"] == second.metrics["test"]
    assert first.threshold == second.threshold


@pytest.mark.parametrize("batching", ["bucket", "fixed"])
def test_resume_continues_at_the_next_epoch_and_matches_an_uninterrupted_run(make_workspace, batching):
    ws = make_workspace(("neg", "pos"), 200, name="a")
    first = fit(ws, **tiny(epochs=1, batching=batching))
    assert first.epochs_completed == 1
    events = []
    resumed = fit(ws, resume=True, epochs=2, progress=events.append)
    assert resumed.run_id == first.run_id
    assert resumed.resumed_from_epoch == 1 and resumed.epochs_completed == 2
    assert [e.epoch for e in events if e.stage == "epoch"] == [2]
    assert resumed.history["loss"][0] == first.history["loss"][0]

    assert resumed.training["batching"] == batching
    straight = fit(make_workspace(("neg", "pos"), 200, name="b"), **tiny(epochs=2, batching=batching))
    assert np.allclose(resumed.history["val_loss"], straight.history["val_loss"], rtol=1e-6)
    assert resumed.metrics["test"]["confusion_matrix"] == straight.metrics["test"]["confusion_matrix"]


def test_interrupted_fit_resumes_with_its_own_settings(make_workspace):
    ws = make_workspace(("neg", "pos"), 200)

    def stop_after_first_epoch(event):
        if event.stage == "epoch" and event.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(ws, progress=stop_after_first_epoch, **tiny(epochs=3, units=6))
    run = next((ws / "runs").iterdir())
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == "running" and state["epochs_done"] == 1
    assert not (run / "model.keras").exists()
    with pytest.raises(WorkspaceError, match="No finished run"):
        from owntrain.evaluate import evaluate

        evaluate(workspace=ws)
    # A plain resume keeps the run's settings (units=6, epochs=3) whatever the defaults say.
    result = fit(ws, resume=True)
    assert result.run_id == run.name and result.epochs_completed == 3 and result.model["units"] == 6


def test_sigkill_between_epochs_leaves_a_resumable_run(make_workspace):
    ws = make_workspace(("neg", "pos"), 200)
    script = textwrap.dedent(f"""
        import os, signal
        from owntrain.train import fit
        def die(event):
            if event.stage == "epoch" and event.epoch == 1:
                os.kill(os.getpid(), signal.SIGKILL)
        fit({str(ws)!r}, progress=die, **{tiny(epochs=2)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL
    result = fit(ws, resume=True)
    assert result.resumed_from_epoch == 1 and result.epochs_completed == 2


def test_resume_without_a_run_and_after_reingest(make_workspace):
    ws = make_workspace(("neg", "pos"), 120)
    with pytest.raises(WorkspaceError, match="No run"):
        fit(ws, resume=True)
    fit(ws, **tiny())
    make_workspace(("neg", "pos"), 120, seed=5)  # same folder, different data
    with pytest.raises(WorkspaceError, match="dataset changed"):
        fit(ws, resume=True, epochs=2)


def test_single_class_training_split_is_a_clear_error(make_workspace):
    rows = [(f"text number {i} good", "pos") for i in range(40)] + [("bad text", "neg")] * 4
    splits = ["train"] * 30 + ["validation"] * 5 + ["test"] * 5 + ["test"] * 4
    ws = make_workspace(("neg", "pos"), rows=rows, splits=splits)
    with pytest.raises(ValidationError, match="single label \\('pos', 30 rows\\)"):
        fit(ws, **tiny())
    assert not (ws / "runs").exists()


def test_too_few_rows_is_a_clear_error(make_workspace):
    ws = make_workspace(("neg", "pos"), 8, splits=["train"] * 6 + ["validation", "test"])
    with pytest.raises(ValidationError, match="6 row\\(s\\).*at least 10"):
        fit(ws, **tiny())


def test_missing_validation_split_is_a_clear_error(make_workspace):
    ws = make_workspace(("neg", "pos"), 40, splits=["train"] * 30 + ["test"] * 10)
    with pytest.raises(ValidationError, match="no validation rows"):
        fit(ws, **tiny())


def test_bad_settings_fail_before_tokenizing(make_workspace):
    ws = make_workspace(("neg", "pos"), 40)
    with pytest.raises(InputError, match="Unknown architecture 'cnn'"):
        fit(ws, arch="cnn")
    with pytest.raises(InputError, match="class_weight"):
        fit(ws, class_weight="inverse")
    with pytest.raises(InputError, match="epochs"):
        fit(ws, epochs=0)
    with pytest.raises(WorkspaceError, match="owntrain ingest"):
        fit(ws.parent / "nowhere")


def test_balanced_class_weights_on_imbalanced_data(make_workspace):
    ws = make_workspace(("neg", "pos"), 300)
    import pandas as pd

    df = pd.read_parquet(ws / "dataset.parquet")
    keep = (df["label"] == "pos") | (np.arange(len(df)) % 5 == 0)  # about 1 neg to 5 pos
    df[keep].to_parquet(ws / "dataset.parquet", index=False)
    result = fit(ws, class_weight="balanced", **tiny())
    assert result.training["class_weight"] == "balanced"
    assert result.metrics["test"]["n"] > 0


def test_word_vectors_initialise_the_embedding(make_workspace, tmp_path):
    ws = make_workspace(("neg", "pos"), 200)
    vec = tmp_path / "tiny.vec"
    words = ["great", "awful", "film", "the", "absent"]
    vec.write_text(f"{len(words)} 5\n" + "".join(f"{w} " + " ".join(["0.5"] * 5) + "\n" for w in words),
                   encoding="utf-8")
    result = fit(ws, vectors=vec, **{**tiny(), "embedding_dim": None})
    assert result.model["embedding_dim"] == 5
    v = result.vectors
    assert v["covered"] == 4 and v["tokens"] > 4 and 0 < v["coverage"] < 1
    with pytest.raises(InputError, match="differs from the vectors' size 5"):
        fit(ws, vectors=vec, **tiny())


def test_tensorboard_event_files_hold_the_epoch_scalars(make_workspace):
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    result = fit(make_workspace(("neg", "pos"), 120), **tiny(epochs=2))
    seen: dict[str, list[tuple[int, float]]] = {}
    for split in ("train", "validation"):
        (path,) = (result.run_dir / "logs" / split).glob("events.out.tfevents.*")
        for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            event = event_pb2.Event.FromString(record)
            for value in event.summary.value:
                seen.setdefault(f"{split}/{value.tag}", []).append((event.step, value.simple_value))
    assert [step for step, _ in seen["train/epoch_loss"]] == [0, 1]
    assert np.allclose([v for _, v in seen["validation/epoch_loss"]], result.history["val_loss"])
    assert "train/epoch_accuracy" in seen


# --------------------------------------------------------------------------- batching and the encoded-split cache


def _embedding_masks(result) -> bool:
    from owntrain.model import load_model

    return bool(load_model(result.model_path).get_layer("embedding").mask_zero)


def test_bucket_is_the_default_and_masks_padding(make_workspace):
    from owntrain.config import DEFAULTS

    assert DEFAULTS.batching == "bucket"
    ws = make_workspace(("neg", "pos"), 200)
    events = []
    result = fit(ws, progress=events.append, **tiny())
    assert result.training["batching"] == "bucket"
    assert json.loads((result.run_dir / "settings.json").read_text())["training"]["batching"] == "bucket"
    assert _embedding_masks(result)
    assert any("similar length" in e.message for e in events if e.stage == "start")
    assert result.metrics["test"]["n"] > 0


def test_fixed_batching_is_the_recipe_without_a_mask(make_workspace):
    ws = make_workspace(("neg", "pos"), 200)
    result = fit(ws, batching="fixed", **tiny())
    assert result.training["batching"] == "fixed" and not _embedding_masks(result)


def test_flatten_forces_fixed_batching(make_workspace):
    ws = make_workspace(("neg", "pos"), 200)
    result = fit(ws, batching="bucket", **tiny(arch="flatten"))
    assert result.training["batching"] == "fixed"
    assert json.loads((result.run_dir / "settings.json").read_text())["training"]["batching"] == "fixed"


def test_unknown_batching_is_a_clear_error(make_workspace):
    with pytest.raises(InputError, match="batching must be 'bucket' or 'fixed'.*--batching"):
        fit(make_workspace(("neg", "pos"), 40), batching="ragged")


def test_runs_from_before_batching_resume_as_fixed(make_workspace):
    ws = make_workspace(("neg", "pos"), 200)
    first = fit(ws, batching="fixed", **tiny())
    path = first.run_dir / "settings.json"
    settings = json.loads(path.read_text())
    del settings["training"]["batching"]
    path.write_text(json.dumps(settings))
    resumed = fit(ws, resume=True, epochs=2)
    assert resumed.training["batching"] == "fixed" and not _embedding_masks(resumed)


@pytest.fixture
def count_tokenize(monkeypatch):
    """Counts calls of the spaCy tokenization that encoding.py runs (one per split encoded)."""
    import owntrain.encoding as encoding

    calls = []
    real = encoding.tokenize

    def counting(texts, *args, **kwargs):
        calls.append(1)
        return real(texts, *args, **kwargs)

    monkeypatch.setattr(encoding, "tokenize", counting)
    return calls


def test_second_fit_reads_the_encoded_splits_from_the_cache(make_workspace, count_tokenize):
    ws = make_workspace(("neg", "pos"), 200)
    first_events = []
    first = fit(ws, progress=first_events.append, **tiny())
    assert len(count_tokenize) == 3  # train once (vocabulary and ids in one pass), validation, test
    assert sorted(p.name.rsplit("-", 1)[1] for p in (ws / "cache").glob("encoded-*.npz")) == \
        ["test.npz", "train.npz", "validation.npz"]
    assert not any("from the cache" in e.message for e in first_events)

    count_tokenize.clear()
    events = []
    second = fit(ws, progress=events.append, **tiny())
    assert count_tokenize == []
    messages = [e.message for e in events if e.stage == "encode"]
    assert "Encoded splits read from the cache" in messages
    assert second.encoder == first.encoder and second.history == first.history
    assert second.metrics["test"] == first.metrics["test"]

    fit(ws, **tiny(arch="bilstm"))  # other model settings: same encoded splits
    assert count_tokenize == []
    fit(ws, **tiny(max_len=30))  # other encoding settings: the vocabulary is reused, the splits re-encoded
    assert len(count_tokenize) == 3


def test_a_damaged_cache_file_is_rebuilt(make_workspace, count_tokenize):
    ws = make_workspace(("neg", "pos"), 200)
    first = fit(ws, **tiny())
    (val_file,) = (ws / "cache").glob("encoded-*-validation.npz")
    val_file.write_bytes(b"not a zip file")
    (enc_file,) = (ws / "cache").glob("vocab-*.json")
    enc_file.write_text("{\"kind\": \"vocab\", ")
    count_tokenize.clear()
    events = []
    again = fit(ws, progress=events.append, **tiny())
    messages = [e.message for e in events if e.stage == "encode"]
    assert any(m.startswith("Building the vocabulary") for m in messages)
    assert any(m.startswith("Encoding") and "validation" in m for m in messages)
    assert again.encoder == first.encoder and again.metrics["test"] == first.metrics["test"]
    count_tokenize.clear()
    fit(ws, **tiny())  # the rebuilt files are good again
    assert count_tokenize == []


def test_cli_fit_offers_batching():
    from typer.testing import CliRunner

    from owntrain.cli import app

    out = CliRunner().invoke(app, ["fit", "--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0 and "--batching" in out.output and "--max-len" in out.output
