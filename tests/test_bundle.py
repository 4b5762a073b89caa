"""The bundle: export, verification, safe archives, round-trip predictions, privacy, `owntrain info/export`."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import shutil
import stat
import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import synthetic_rows, write_workspace
from owntrain.bundle import (
    BundleVersionWarning,
    export_archive,
    export_bundle,
    inspect_bundle,
    load_bundle,
    manifest_digest,
    unpack_archive,
)
from owntrain.cli import app
from owntrain.errors import BundleError, WorkspaceError

TINY = dict(arch="lstm", max_len=40, embedding_dim=8, units=8, epochs=1, batch_size=32, learning_rate=1e-2)
SECRET = "Quixlebottom from accounting wrote this private sentence about the great film"
FILES = {"model.keras", "vocab.json", "preprocessing.json", "labels.json", "metrics.json", "MODEL_CARD.md"}


class Trained:
    """One tiny trained run and its exported bundle, shared by the tests of this module."""

    def __init__(self, root: Path) -> None:
        from owntrain.train import fit

        rows = synthetic_rows(("neg", "pos"), 300, seed=3)
        rows[5] = (SECRET, "pos")  # a training text with a name that occurs once
        self.rows = rows
        self.ws = write_workspace(root / "ws", rows, ("neg", "pos"), seed=3)
        self.fit = fit(self.ws, min_df=2, **TINY)
        self.bundle = export_bundle(self.fit, self.ws / "bundle")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return Trained(tmp_path_factory.mktemp("bundle"))


@pytest.fixture
def copy(trained: Trained, tmp_path: Path) -> Path:
    """A private copy of the bundle folder that a test may damage."""
    return Path(shutil.copytree(trained.bundle, tmp_path / "bundle"))


def rewrite_model_members(folder: Path, edit) -> None:
    """Rewrite the bundle's model.keras with ``edit(members)`` applied to its {name: bytes} members,
    then the manifest's hashes, as an attacker who also forges the manifest would."""
    path = folder / "model.keras"
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    edit(members)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    rewrite_manifest(folder)


def rewrite_manifest(folder: Path, edit=None, *, rehash: bool = True, redigest: bool = True) -> dict:
    """Edit manifest.json: apply ``edit``, optionally recompute the file hashes and the digest."""
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    if edit:
        edit(manifest)
    if rehash:
        for name, entry in manifest["files"].items():
            data = (folder / name).read_bytes()
            entry["sha256"], entry["bytes"] = hashlib.sha256(data).hexdigest(), len(data)
    if redigest:
        manifest["digest"] = manifest_digest(manifest)
    path.write_text(json.dumps(manifest, indent=2))
    return manifest


# --------------------------------------------------------------------------- export


def test_export_writes_the_documented_files(trained: Trained):
    names = {p.name for p in trained.bundle.iterdir()}
    assert names == FILES | {"manifest.json"}
    manifest = json.loads((trained.bundle / "manifest.json").read_text())
    assert manifest["format"] == "owntrain-bundle" and manifest["format_version"] == 1
    assert set(manifest["files"]) == FILES
    for name, entry in manifest["files"].items():
        data = (trained.bundle / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert manifest["digest"] == manifest_digest(manifest)
    assert {"tensorflow", "keras", "spacy", "owntrain"} <= set(manifest["versions"])
    assert manifest["run_id"] == trained.fit.run_id and manifest["model"]["parameters"] > 0

    pre = json.loads((trained.bundle / "preprocessing.json").read_text())
    assert pre["normalization"]["version"] == 1
    assert pre["text"] == {"lang": "en", "lowercase": True, "keep_punct": False}
    assert (pre["max_len"], pre["padding"], pre["truncating"]) == (40, "pre", "pre")
    labels = json.loads((trained.bundle / "labels.json").read_text())
    assert labels["labels"] == ["neg", "pos"] and labels["threshold"] == trained.fit.threshold
    assert json.loads((trained.bundle / "metrics.json").read_text()) == trained.fit.metrics
    card = (trained.bundle / "MODEL_CARD.md").read_text()
    assert "`neg`, `pos`" in card and f"{trained.fit.metrics['test']['accuracy']:.3f}" in card
    # the encoding module finds the bundle's encoder under the agreed names
    from owntrain.encoding import bundle_encoder

    settings, encoder = bundle_encoder(trained.bundle)
    assert settings.max_len == 40 and encoder.to_dict() == trained.fit.encoder


def test_the_model_is_saved_without_optimizer_state(trained: Trained):
    with zipfile.ZipFile(trained.bundle / "model.keras") as zf:
        config = json.loads(zf.read("config.json"))
    assert not config.get("compile_config")  # no optimizer, loss or metrics travel
    assert (trained.bundle / "model.keras").stat().st_size < trained.fit.model_path.stat().st_size


def test_bundle_holds_no_training_text(trained: Trained, tmp_path: Path):
    archive = export_archive(trained.bundle, tmp_path / "b.tar.gz")
    blobs = {p.name: p.read_bytes() for p in trained.bundle.iterdir()}
    with zipfile.ZipFile(trained.bundle / "model.keras") as zf:  # the model file is itself a zip
        blobs.update({f"model.keras/{n}": zf.read(n) for n in zf.namelist()})
    with tarfile.open(archive) as tar:
        blobs.update({m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()})
    haystack = {name: data.lower() for name, data in blobs.items()}
    sentences = [text for text, _ in trained.rows if len(text.split()) >= 6]
    assert len(sentences) > 100
    for text in sentences:
        words = text.lower().split()
        needles = {" ".join(words), " ".join(words[:6]), " ".join(words[-6:])}
        for name, data in haystack.items():
            for needle in needles:
                assert needle.encode("utf-8") not in data, f"training text {needle!r} found in {name}"
    # a name that occurs in one training text only is not in the vocabulary either (min_df=2)
    assert all(b"quixlebottom" not in data for data in haystack.values())


def test_failed_export_keeps_the_previous_bundle(trained: Trained, tmp_path: Path, monkeypatch):
    out = Path(shutil.copytree(trained.bundle, tmp_path / "bundle"))
    before = inspect_bundle(out).fingerprint
    import owntrain.bundle as bundle_module

    def disk_full(tmp: Path, run) -> None:
        (tmp / "model.keras").write_bytes(b"half a model")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bundle_module, "_write_bundle_files", disk_full)
    with pytest.raises(BundleError, match="No space left on device.*previous bundle.*unchanged"):
        export_bundle(trained.fit, out)
    assert inspect_bundle(out).ok and inspect_bundle(out).fingerprint == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no temporary folder left behind


def test_export_refuses_unfinished_runs_and_foreign_folders(trained: Trained, tmp_path: Path):
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "settings.json").write_text("{}")
    with pytest.raises(WorkspaceError, match="has not finished training"):
        export_bundle(run, tmp_path / "b")
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"jpg")
    with pytest.raises(BundleError, match="other than a bundle"):
        export_bundle(trained.fit, foreign)
    assert (foreign / "cat.jpg").is_file()


# --------------------------------------------------------------------------- loading and predicting


def test_bundle_predictions_equal_the_trained_model(trained: Trained, tmp_path: Path):
    import pandas as pd

    from owntrain.encoding import EncodingSettings, encoder_from_dict
    from owntrain.evaluate import predict_ids
    from owntrain.model import load_model, predict_proba
    from owntrain.train import encode_padded

    texts = pd.read_parquet(trained.ws / "dataset.parquet")["text"].tolist()[:120]
    x = encode_padded(texts, EncodingSettings.from_dict(trained.fit.encoding), encoder_from_dict(trained.fit.encoder))
    expected = predict_proba(load_model(trained.fit.model_path), x, batch_size=32)
    expected_labels = [["neg", "pos"][i] for i in predict_ids(expected, trained.fit.threshold)]
    sources = [trained.bundle, export_archive(trained.bundle, tmp_path / "b.tar.gz"),
               export_archive(trained.bundle, tmp_path / "b.zip")]
    for source in sources:
        bundle = load_bundle(source)
        predictions = bundle.predict(texts)
        assert np.allclose(predictions.probabilities, expected, atol=1e-6), source
        assert predictions.labels == expected_labels
        assert predictions.classes == ["neg", "pos"] and predictions.threshold == trained.fit.threshold


def test_predict_marks_empty_texts_and_accepts_any_text(trained: Trained):
    bundle = load_bundle(trained.bundle)
    texts = ["a great and wonderful film", "", "  <br /> ", None, "zzz qqq unknownword", "Ünïcödé 😀 ש"]
    p = bundle.predict(texts)
    assert len(p) == 6
    assert p.status == ["ok", "empty_text", "empty_text", "empty_text", "ok", "ok"]
    assert p.labels[1] is None and np.isnan(p.probabilities[1]).all()
    ok = [i for i, s in enumerate(p.status) if s == "ok"]
    assert np.allclose(p.probabilities[ok].sum(axis=1), 1.0)
    assert all(p.labels[i] in ("neg", "pos") for i in ok)
    assert p[0]["label"] == p.labels[0] and set(p[0]["probabilities"]) == {"neg", "pos"}
    assert len(bundle.predict([])) == 0
    # markup and spacing normalised as ingest does: the same prediction
    same = bundle.predict(["a <b>great</b>   and wonderful\tfilm"])
    assert np.allclose(same.probabilities[0], p.probabilities[0])


def test_tampered_weights_are_refused(copy: Path):
    data = bytearray((copy / "model.keras").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / "model.keras").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="model.keras does not match its SHA-256"):
        load_bundle(copy)
    report = inspect_bundle(copy)
    assert not report.ok and {c.name: c.status for c in report.files}["model.keras"] == "changed"


def test_truncated_or_missing_files_are_refused(copy: Path):
    (copy / "vocab.json").write_bytes((copy / "vocab.json").read_bytes()[:50])
    with pytest.raises(BundleError, match="vocab.json does not match"):
        load_bundle(copy)
    (copy / "labels.json").unlink()
    with pytest.raises(BundleError, match="labels.json is missing"):
        load_bundle(copy)


def test_a_linked_file_is_not_followed(copy: Path, tmp_path: Path):
    outside = tmp_path / "outside.json"
    shutil.copyfile(copy / "labels.json", outside)
    (copy / "labels.json").unlink()
    (copy / "labels.json").symlink_to(outside)
    with pytest.raises(BundleError, match="labels.json .*not a plain file"):
        load_bundle(copy)


def test_edited_manifest_is_refused(copy: Path):
    # change the threshold and put the new file hash into the manifest, but not its digest
    labels = json.loads((copy / "labels.json").read_text())
    labels["threshold"] = 0.01
    (copy / "labels.json").write_text(json.dumps(labels))
    rewrite_manifest(copy, redigest=False)
    with pytest.raises(BundleError, match="manifest.json was edited or damaged"):
        load_bundle(copy)
    with pytest.raises(BundleError, match="manifest.json was edited or damaged"):
        inspect_bundle(copy)
    # dropping a file from the manifest, even with a fresh digest, leaves the bundle incomplete
    rewrite_manifest(copy, lambda m: m["files"].pop("vocab.json"))
    with pytest.raises(BundleError, match="incomplete.*vocab.json"):
        load_bundle(copy)


def test_newer_format_version_is_a_clear_error(copy: Path):
    rewrite_manifest(copy, lambda m: m.update(format_version=3, owntrain_version="9.0.0"))
    with pytest.raises(BundleError, match=r"bundle format 3, made by a newer owntrain \(9.0.0\).*reads bundle "
                                          r"formats up to 2\. Upgrade owntrain"):
        load_bundle(copy)


def test_other_library_versions_warn(copy: Path):
    rewrite_manifest(copy, lambda m: m["versions"].update(keras="3.0.0", tensorflow="2.16.1"))
    with pytest.warns(BundleVersionWarning, match="keras 3.0.0"):
        bundle = load_bundle(copy)
    assert any("tensorflow 2.16.1" in w for w in bundle.warnings)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_bundle(copy, warn=False)


class _Trap:
    """Unpickling this creates the file ``marker`` (it must never happen)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_unlisted_files_are_never_loaded(copy: Path, tmp_path: Path):
    marker = tmp_path / "unpickled"
    (copy / "model.pkl").write_bytes(pickle.dumps(_Trap(marker)))
    (copy / "extra").mkdir()
    with pytest.warns(UserWarning, match="does not list.*extra/.*model.pkl"):
        bundle = load_bundle(copy)
    assert not marker.exists()
    assert bundle.predict(["great film"]).labels[0] in ("neg", "pos")
    assert inspect_bundle(copy).unlisted == ["extra/", "model.pkl"]


def test_a_model_with_a_lambda_layer_is_refused(copy: Path):
    import keras

    inputs = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(50, 4)(inputs)
    x = keras.layers.Lambda(lambda t: t * 2.0)(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x)).save(str(copy / "model.keras"))
    rewrite_manifest(copy)
    with pytest.raises(BundleError, match="Lambda object, which would run arbitrary Python code"):
        load_bundle(copy)


def test_a_model_with_a_custom_object_is_refused(copy: Path):
    def custom_dense(members: dict) -> None:
        config = json.loads(members["config.json"])
        dense = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense")
        dense.update(module="mypkg.layers", registered_name="mypkg>Dense")
        members["config.json"] = json.dumps(config).encode()

    rewrite_model_members(copy, custom_dense)
    with pytest.raises(BundleError, match="custom object 'mypkg>Dense' from module 'mypkg.layers'"):
        load_bundle(copy)
    assert not inspect_bundle(copy).ok


def test_a_model_file_with_extra_members_is_refused(copy: Path):
    with zipfile.ZipFile(copy / "model.keras", "a") as zf:
        zf.writestr("payload.pkl", b"not for loading")
    rewrite_manifest(copy)
    with pytest.raises(BundleError, match="not a plain Keras model file: it holds payload.pkl"):
        load_bundle(copy)


def test_not_a_bundle(tmp_path: Path):
    with pytest.raises(BundleError, match="not an owntrain bundle"):
        load_bundle(tmp_path)
    with pytest.raises(BundleError, match="No bundle at"):
        load_bundle(tmp_path / "missing")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(BundleError, match="neither a bundle folder nor a bundle archive"):
        load_bundle(tmp_path / "x.txt")
    (tmp_path / "broken.tar.gz").write_bytes(b"not gzip at all")
    with pytest.raises(BundleError, match="not a readable tar.gz archive"):
        load_bundle(tmp_path / "broken.tar.gz")


# --------------------------------------------------------------------------- archives


def test_archives_are_reproducible_and_unpack_to_one_folder(trained: Trained, tmp_path: Path):
    a = export_archive(trained.bundle, tmp_path / "one.tar.gz")
    b = export_archive(trained.bundle, tmp_path / "two" / "one.tar.gz")
    assert a.read_bytes() == b.read_bytes()
    with tarfile.open(a) as tar:
        names = tar.getnames()
    assert names[0] == "one" and sorted(names[1:]) == sorted(f"one/{n}" for n in FILES | {"manifest.json"})
    root = unpack_archive(a, tmp_path / "unpacked")
    assert root == tmp_path / "unpacked" / "one" and inspect_bundle(root).ok
    with pytest.raises(BundleError, match="name it"):
        export_archive(trained.bundle, tmp_path / "b.rar")


def _tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"x") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("bundle/manifest.json")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"{}"))
        if member.isfile():
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        else:
            tar.addfile(member)
    return path


def _tar_member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


@pytest.mark.parametrize("member, reason", [
    (_tar_member("bundle/../../evil.txt"), "outside the archive's folder"),
    (_tar_member("/tmp/owntrain-evil.txt"), "absolute path"),
    (_tar_member("bundle/model.keras", tarfile.SYMTYPE, "/etc/passwd"), "is a link"),
    (_tar_member("bundle/vocab.json", tarfile.LNKTYPE, "bundle/manifest.json"), "is a link"),
    (_tar_member("bundle/dev", tarfile.CHRTYPE), "device or a pipe"),
    (_tar_member("bundle/fifo", tarfile.FIFOTYPE), "device or a pipe"),
    (_tar_member("bundle\\..\\evil.txt"), "backslash"),
    (_tar_member("bundle/manifest.json"), "appears twice"),
])
def test_unsafe_tar_entries_are_refused(tmp_path: Path, member: tarfile.TarInfo, reason: str):
    archive = _tar_with(tmp_path / "evil.tar.gz", member)
    target = tmp_path / "deep" / "target"
    with pytest.raises(BundleError, match=f"Refused to unpack .*{reason}.*Nothing was unpacked"):
        unpack_archive(archive, target)
    assert not any(target.iterdir())
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "deep" / "evil.txt").exists()
    with pytest.raises(BundleError, match="Refused to unpack"):
        load_bundle(archive)


@pytest.mark.parametrize("name, mode, reason", [
    ("bundle/../evil.txt", stat.S_IFREG | 0o644, "outside the archive's folder"),
    ("/evil.txt", stat.S_IFREG | 0o644, "absolute path"),
    ("C:/evil.txt", stat.S_IFREG | 0o644, "absolute path"),
    ("bundle/model.keras", stat.S_IFLNK | 0o777, "symbolic link"),
    ("bundle/dev", stat.S_IFCHR | 0o644, "special file"),
])
def test_unsafe_zip_entries_are_refused(tmp_path: Path, name: str, mode: int, reason: str):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("bundle/manifest.json", "{}")
        info = zipfile.ZipInfo(name)
        info.external_attr = mode << 16
        zf.writestr(info, "/etc/passwd" if stat.S_ISLNK(mode) else "x")
    target = tmp_path / "target"
    with pytest.raises(BundleError, match=f"Refused to unpack .*{reason}"):
        unpack_archive(archive, target)
    assert not any(target.iterdir()) and not (tmp_path / "evil.txt").exists()


def test_tampered_archive_is_refused(trained: Trained, tmp_path: Path):
    archive = export_archive(trained.bundle, tmp_path / "b.zip")
    edited = tmp_path / "edited.zip"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(edited, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("labels.json"):
                data = data.replace(b'"pos"', b'"POS"')
            dst.writestr(info, data)
    with pytest.raises(BundleError, match="labels.json does not match its SHA-256"):
        load_bundle(edited)


# --------------------------------------------------------------------------- CLI


runner = CliRunner()


def test_info_prints_the_card(trained: Trained):
    result = runner.invoke(app, ["info", str(trained.bundle)])
    assert result.exit_code == 0, result.output
    out = result.output
    for expected in ("Fingerprint", "neg, pos", "Language        en", "max_len 40", "accuracy",
                     "all 6 files match manifest.json", "model.keras", "keras 3"):
        assert expected in out, expected
    as_json = json.loads(runner.invoke(app, ["info", str(trained.bundle), "--json"]).output)
    assert as_json["ok"] is True and as_json["labels"]["labels"] == ["neg", "pos"]


def test_info_reports_a_tampered_bundle(copy: Path):
    (copy / "metrics.json").write_text("{}")
    result = runner.invoke(app, ["info", str(copy)])
    assert result.exit_code == 2
    assert "1 of 6 files do NOT match" in result.output and "metrics.json" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["info", str(copy.parent / "nothing")])
    assert result.exit_code == 2 and "No bundle at" in result.output


def test_export_command_writes_a_loadable_archive(trained: Trained, tmp_path: Path):
    out = tmp_path / "carry" / "model.tar.gz"
    result = runner.invoke(app, ["export", "-w", str(trained.ws), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "fingerprint" in result.output and out.is_file()
    assert load_bundle(out).fingerprint == inspect_bundle(trained.bundle).fingerprint
    result = runner.invoke(app, ["export", "-w", str(trained.ws), "--run", trained.fit.run_id,
                                 "-o", str(tmp_path / "run.zip")])
    assert result.exit_code == 0, result.output
    assert inspect_bundle(tmp_path / "run.zip").manifest["run_id"] == trained.fit.run_id


def test_export_command_errors(trained: Trained, tmp_path: Path):
    result = runner.invoke(app, ["export", "-w", str(trained.ws), "--run", "nope", "-o", str(tmp_path / "x.tar.gz")])
    assert result.exit_code == 2 and "No run 'nope'" in result.output
    result = runner.invoke(app, ["export", "-w", str(tmp_path / "empty"), "-o", str(tmp_path / "x.tar.gz")])
    assert result.exit_code == 2 and "owntrain fit" in result.output
    result = runner.invoke(app, ["export", "-w", str(trained.ws), "-o", str(tmp_path / "x.rar")])
    assert result.exit_code == 2 and "name it" in result.output


def test_a_model_that_masks_padding_gets_length_bucketed_batches(copy: Path):
    """Bundles of masking models (variable-length batches) predict as if every text were padded to max_len."""
    import keras

    vocab = json.loads((copy / "vocab.json").read_text())
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape=(None,), dtype="int32", name="ids")
    x = keras.layers.Embedding(4 + len(vocab["tokens"]), 8, mask_zero=True)(inputs)
    x = keras.layers.LSTM(6)(x)
    keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x)).save(str(copy / "model.keras"))
    rewrite_manifest(copy)
    bundle = load_bundle(copy)
    assert bundle.variable_length
    bundle.batch_size = 4  # several batches of different lengths, out of input order
    rng = np.random.default_rng(0)
    words = ["great", "film", "awful", "the", "plot", "dull", "unknownword"]
    texts = [" ".join(rng.choice(words, size=int(n))) for n in rng.integers(1, 60, size=23)]
    seqs = bundle.encode(texts)
    full = bundle._pad(seqs, bundle.settings.max_len)
    expected = bundle.model.predict(full, verbose=0)[:, 0]
    got = bundle.predict_encoded(seqs)
    assert np.allclose(got[:, 1], expected, atol=1e-5)


def test_the_default_fit_bundle_masks_padding(trained: Trained):
    """fit's default batching ("bucket") trains a masking model, so its bundle batches by length too."""
    bundle = load_bundle(trained.bundle)
    assert trained.fit.training["batching"] == "bucket"
    assert bundle.batching == "masked" and bundle.variable_length


def test_the_recipe_lstm_skips_padding_steps_exactly(trained: Trained, tmp_path: Path):
    from owntrain.errors import InputError
    from owntrain.train import fit

    ws = write_workspace(tmp_path / "ws", trained.rows, ("neg", "pos"), seed=3)
    recipe = fit(ws, min_df=2, batching="fixed", **TINY)  # the recipe: unmasked, padded to max_len
    bundle = load_bundle(export_bundle(recipe, ws / "bundle"))
    assert bundle.batching == "pad_state" and bundle.variable_length
    rng = np.random.default_rng(1)
    words = ["great", "film", "awful", "the", "plot", "dull", "wonderful", "unknownword"]
    texts = [" ".join(rng.choice(words, size=int(n))) for n in rng.integers(1, 90, size=41)]  # some > max_len
    seqs = bundle.encode(texts)
    assert max(len(s) for s in seqs) == 40 and min(len(s) for s in seqs) < 5
    bundle.batch_size = 8
    shortcut = bundle.predict_encoded(seqs)
    bundle.batching = "fixed"
    assert np.allclose(shortcut, bundle.predict_encoded(seqs), atol=1e-6)
    with pytest.raises(InputError, match="does not mask padding"):
        bundle.batching = "masked"


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_killed_export_is_cleaned_up_by_the_next_one(trained: Trained, tmp_path: Path):
    from owntrain.bundle import _recover_interrupted_swap

    pid = _dead_pid()
    out = tmp_path / "bundle"
    # killed between moving the previous bundle aside and renaming the new one into place
    shutil.copytree(trained.bundle, tmp_path / f".bundle.old-{pid}-0123abcd")
    (tmp_path / f".bundle.tmp-{pid}-89abcdef").mkdir()
    _recover_interrupted_swap(out)
    assert inspect_bundle(out).ok and sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
    (tmp_path / f".bundle.tmp-{pid}-89abcdef").mkdir()
    export_bundle(trained.fit, out)
    assert inspect_bundle(out).ok and sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
