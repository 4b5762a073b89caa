"""Bundle attacks that tests/test_bundle.py does not already try.

Already covered there (and not repeated here): changed weights in a folder
(test_tampered_weights_are_refused), truncated or missing files, a listed file that is a symlink,
an edited manifest (test_edited_manifest_is_refused), a newer format, '..', absolute, symlink,
hard-link, device, FIFO, backslash and duplicate entries in tar and zip archives
(test_unsafe_tar_entries_are_refused, test_unsafe_zip_entries_are_refused), a labels.json edited
inside a zip (test_tampered_archive_is_refused), a Lambda layer, a custom Dense, extra members in
model.keras, and a pickle dropped into a bundle folder (test_unlisted_files_are_never_loaded).

Here: pickles dropped into archives or passed off as listed files, a manifest that lists paths
outside the bundle, a linked manifest, an unpack target with a planted symlink, changed weights
inside a tar.gz, and code-running or custom objects hidden deeper in a model's configuration.
Every one is refused with a BundleError (or, for unlisted files, ignored with a warning) and no
pickle is ever unpickled.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import synthetic_rows, write_workspace
from owntrain.bundle import export_archive, inspect_bundle, load_bundle, unpack_archive
from owntrain.errors import BundleError
from test_bundle import rewrite_manifest, rewrite_model_members

TINY = dict(max_len=40, embedding_dim=8, units=8, epochs=1, batch_size=32, learning_rate=1e-2, min_df=1, ngram_buckets=256)


class _Trap:
    """Unpickling this creates the file ``marker``: the test fails if that ever happens."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from owntrain.train import fit

    root = tmp_path_factory.mktemp("attacks")
    ws = write_workspace(root / "ws", synthetic_rows(("neg", "pos"), 240, seed=6), ("neg", "pos"), seed=6)
    return fit(ws, **TINY).bundle_dir


@pytest.fixture
def copy(bundle_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle_dir, tmp_path / "bundle"))


@pytest.fixture
def trap(tmp_path: Path) -> tuple[bytes, Path]:
    marker = tmp_path / "UNPICKLED"
    return pickle.dumps(_Trap(marker)), marker


# --------------------------------------------------------------------------- pickles


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_a_pickle_in_an_archive_is_never_loaded(copy: Path, tmp_path: Path, trap, kind: str):
    payload, marker = trap
    (copy / "model.pkl").write_bytes(payload)
    (copy / "vocab.pickle").write_bytes(payload)
    archive = tmp_path / f"b.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for p in sorted(copy.iterdir()):
                zf.write(p, f"b/{p.name}")
    else:
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(copy, arcname="b")
    with pytest.warns(UserWarning, match="does not list.*model.pkl.*vocab.pickle"):
        bundle = load_bundle(archive)
    assert bundle.predict(["a great film"]).labels[0] in ("neg", "pos")
    assert inspect_bundle(archive).unlisted == ["model.pkl", "vocab.pickle"]
    assert not marker.exists()


@pytest.mark.parametrize("name", ["vocab.json", "labels.json", "preprocessing.json", "metrics.json"])
def test_a_pickle_posing_as_a_listed_json_file_is_refused(copy: Path, trap, name: str):
    payload, marker = trap
    (copy / name).write_bytes(payload)
    rewrite_manifest(copy)  # the attacker also rewrites the hashes and the digest
    with pytest.raises(BundleError, match=f"{name} in the bundle is not readable JSON"):
        load_bundle(copy)
    assert not marker.exists()


def test_a_pickle_posing_as_the_model_weights_is_refused(copy: Path, trap):
    payload, marker = trap
    rewrite_model_members(copy, lambda members: members.update({"model.weights.h5": payload}))
    with pytest.raises(BundleError, match="could not be loaded safely"):
        load_bundle(copy)
    assert not marker.exists()


def test_a_pickle_posing_as_the_model_file_is_refused(copy: Path, trap):
    payload, marker = trap
    (copy / "model.keras").write_bytes(payload)
    rewrite_manifest(copy)
    with pytest.raises(BundleError, match="model.keras is not a readable Keras model file"):
        load_bundle(copy)
    assert not marker.exists()


# --------------------------------------------------------------------------- manifests and paths


@pytest.mark.parametrize("name", ["../outside.json", "/etc/hostname", "sub/labels.json", ".hidden", "manifest.json",
                                  "..\\outside.json", ""])
def test_a_manifest_listing_paths_outside_the_bundle_is_refused(copy: Path, tmp_path: Path, name: str):
    (tmp_path / "outside.json").write_text('{"secret": true}')

    def add(manifest: dict) -> None:
        manifest["files"][name] = {"sha256": "0" * 64, "bytes": 16}

    rewrite_manifest(copy, add, rehash=False)  # with a fresh digest: only the name is wrong
    with pytest.raises(BundleError, match="lists an unacceptable file name"):
        load_bundle(copy)
    with pytest.raises(BundleError, match="lists an unacceptable file name"):
        inspect_bundle(copy)


def test_a_linked_manifest_is_refused(copy: Path, tmp_path: Path):
    real = tmp_path / "manifest-elsewhere.json"
    shutil.move(copy / "manifest.json", real)
    (copy / "manifest.json").symlink_to(real)
    with pytest.raises(BundleError, match="manifest.json is a link"):
        load_bundle(copy)


def test_unpacking_never_follows_a_symlink_planted_in_the_target(bundle_dir: Path, tmp_path: Path):
    archive = export_archive(bundle_dir, tmp_path / "b.tar.gz")
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    (target / "b").symlink_to(outside)  # the archive's top folder is b/
    with pytest.raises(BundleError):
        unpack_archive(archive, target)
    assert not any(outside.iterdir())


def test_a_file_planted_in_the_target_is_not_overwritten(bundle_dir: Path, tmp_path: Path):
    archive = export_archive(bundle_dir, tmp_path / "b.zip")
    target = tmp_path / "target"
    (target / "b").mkdir(parents=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    os.symlink(victim, target / "b" / "labels.json")  # a link where an entry will be written
    with pytest.raises(BundleError, match="unpack"):
        unpack_archive(archive, target)
    assert victim.read_text() == "keep me"


def test_changed_weights_inside_a_tar_gz_are_refused(bundle_dir: Path, tmp_path: Path):
    archive = export_archive(bundle_dir, tmp_path / "b.tar.gz")
    edited = tmp_path / "edited.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(edited, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None
            if member.name.endswith("model.keras"):
                changed = bytearray(data)
                changed[len(changed) // 2] ^= 0x01
                data = bytes(changed)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    with pytest.raises(BundleError, match="model.keras does not match its SHA-256"):
        load_bundle(edited)
    assert not inspect_bundle(edited).ok


# --------------------------------------------------------------------------- code hidden in the model


def _edit_dense(copy: Path, edit) -> None:
    def edit_config(members: dict) -> None:
        config = json.loads(members["config.json"])
        dense = next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense")
        edit(dense["config"])
        members["config.json"] = json.dumps(config).encode()

    rewrite_model_members(copy, edit_config)


_EVIL_CALLS: list = []
_FUNCTION = {"module": "builtins", "class_name": "function", "config": "eval", "registered_name": "function"}
_LAMBDA = {"module": "keras.layers", "class_name": "Lambda", "registered_name": None,
           "config": {"function": {"class_name": "__lambda__", "config": {"code": "YQ==", "defaults": None,
                                                                          "closure": None}}}}


@pytest.mark.parametrize("payload, where, message", [
    (_FUNCTION, "activation", "holds a function object"),
    ({"class_name": "__lambda__", "config": {"code": "YQ==", "defaults": None, "closure": None}}, "activation",
     "holds a __lambda__ object"),
    (_LAMBDA, "kernel_regularizer", "holds a Lambda object"),
    ({"module": "keras.layers", "class_name": "TFSMLayer", "config": {"filepath": "/tmp/x"}, "registered_name": None},
     "kernel_constraint", "holds a TFSMLayer object"),
    ({"module": "mypkg.init", "class_name": "Evil", "config": {}, "registered_name": "mypkg>Evil"},
     "kernel_initializer", "custom object 'mypkg>Evil' from module 'mypkg.init'"),
    ({"module": "keras_evil.initializers", "class_name": "Zeros", "config": {}, "registered_name": None},
     "bias_initializer", "custom object 'Zeros' from module 'keras_evil.initializers'"),
    ({"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": "mypkg>Zeros"},
     "bias_initializer", "custom object 'mypkg>Zeros'"),
    # not caught by owntrain's own check (a name, not an object): Keras' safe loading refuses it
    ("mypkg>evil", "activation", "could not be loaded safely"),
    ({"module": None, "class_name": "evil", "config": "evil", "registered_name": "mypkg>evil"}, "activation",
     "could not be loaded safely"),
])
def test_code_or_custom_objects_hidden_in_the_model_config_are_refused(copy: Path, payload, where, message):
    import keras

    if keras.saving.get_registered_object("mypkg>evil") is None:
        @keras.saving.register_keras_serializable(package="mypkg", name="evil")
        def evil(x):  # registered in this process: even so, the bundle may not use it
            _EVIL_CALLS.append(x)
            return x

    _edit_dense(copy, lambda config: config.update({where: payload}))
    with pytest.raises(BundleError, match=message):
        load_bundle(copy)
    assert not _EVIL_CALLS
