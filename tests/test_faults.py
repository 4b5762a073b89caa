"""Injected faults: killed and interrupted processes, a full disk. Nothing half-written is ever trusted.

* SIGKILL during ingest (from outside while it reads, and from inside at each step of publishing
  the new dataset): either the previous dataset stays, intact and consistent with its report, or
  there is no dataset and `owntrain fit` says to run ingest; the next ingest removes the temporary
  folder the killed one left.
* SIGKILL during fit after the first checkpoint: `owntrain fit --resume` finishes the run.
* Ctrl-C (SIGINT) during fit: exactly one line on stderr, no traceback, a resumable run.
* A full disk (ENOSPC, simulated) at every write of an export, of an archive and of fit's own
  export: a clear error, and the previous bundle or archive stays intact and loadable.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import synthetic_rows, write_workspace
from owntrain.bundle import export_archive, export_bundle, inspect_bundle, load_bundle
from owntrain.cli import app
from owntrain.data import ingest
from owntrain.errors import BundleError

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(max_len=40, embedding_dim=8, units=8, epochs=1, batch_size=32, learning_rate=1e-2, min_df=1, ngram_buckets=256)
TINY_ARGS = ["--max-len", "40", "--embedding-dim", "8", "--units", "8", "--batch-size", "32", "--min-df", "1",
             "--learning-rate", "0.01", "--ngram-buckets", "256"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
runner = CliRunner()


def owntrain(*args: str, **kwargs) -> subprocess.Popen:
    """`owntrain ARGS` in a child process (as a user runs it), stdout and stderr captured."""
    return subprocess.Popen([sys.executable, "-m", "owntrain", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=ENV, **kwargs)


def wait_for(pattern: str, proc: subprocess.Popen, timeout: float = 180.0) -> Path:
    """Poll until a file matching ``pattern`` exists; fail if the process ends or time runs out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = glob.glob(pattern)
        if found:
            return Path(found[0])
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"process ended (rc {proc.returncode}) before {pattern} appeared:\n{out.decode()}\n{err.decode()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"{pattern} did not appear within {timeout} s")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def small_csv(path: Path, n: int = 60, seed: int = 0) -> Path:
    rows = synthetic_rows(("negative", "positive"), n, seed=seed)
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    return path


def assert_consistent(ws: Path) -> None:
    """dataset.parquet, ingest_report.json and rejects.csv describe the same rows."""
    report = json.loads((ws / "ingest_report.json").read_text(encoding="utf-8"))
    df = pd.read_parquet(ws / "dataset.parquet")
    assert len(df) == report["rows"]["kept"]
    assert sorted(df["label"].unique()) == sorted(report["labels"])
    assert df["split"].value_counts().to_dict() == {k: v for k, v in report["split_sizes"].items() if v}
    rejects = pd.read_csv(ws / "rejects.csv", dtype=str, keep_default_na=False)
    assert len(rejects) == report["rows"]["rejected"]


def assert_fit_asks_for_ingest(ws: Path) -> None:
    result = runner.invoke(app, ["fit", "-w", str(ws)])
    assert result.exit_code == 2, result.output
    assert "No ingested dataset" in result.stderr and "owntrain ingest" in result.stderr
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------- SIGKILL during ingest


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~55 MB, 300,000 rows: several seconds of ingest (made by bench/make_big_csv.py)."""
    path = tmp_path_factory.mktemp("big") / "big.csv"
    subprocess.run([sys.executable, str(ROOT / "bench" / "make_big_csv.py"), str(path), "--rows", "300000",
                    "--words", "30"], check=True, timeout=120)
    return path


def test_sigkill_while_ingest_reads_keeps_the_previous_dataset(big_csv: Path, tmp_path: Path):
    ws = tmp_path / "ws"
    ingest(small_csv(tmp_path / "old.csv"), workspace=ws)
    before = {name: sha256(ws / name) for name in ("dataset.parquet", "ingest_report.json", "rejects.csv")}

    proc = owntrain("ingest", str(big_csv), "-w", str(ws))
    wait_for(str(ws / f".ingest-{proc.pid}" / "stage.parquet"), proc)
    time.sleep(0.3)  # well into reading 300,000 rows
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    left = ws / f".ingest-{proc.pid}"
    assert left.is_dir()  # the killed process could not clean up ...
    assert {name: sha256(ws / name) for name in before} == before  # ... but published nothing
    assert_consistent(ws)

    ingest(small_csv(tmp_path / "new.csv", seed=1), workspace=ws)
    assert not list(ws.glob(".ingest-*"))  # the next ingest removed the dead one's folder
    assert_consistent(ws)


KILL_AT = {
    # after pass 2 wrote the new dataset into the temporary folder, before anything is published
    "dataset-written": "orig = d._write_dataset\n"
                       "def patched(*a, **k):\n    out = orig(*a, **k)\n    die()\n"
                       "d._write_dataset = patched",
    # after the old dataset was removed and the new rejects moved in, before the new report
    "report-not-written": "def patched(*a, **k):\n    die()\n"
                          "d.write_json_atomic = patched",
    # after the new report was written, before the new dataset is renamed into place
    "dataset-not-renamed": "orig = d.write_json_atomic\n"
                           "def patched(*a, **k):\n    orig(*a, **k)\n    die()\n"
                           "d.write_json_atomic = patched",
}


@pytest.mark.parametrize("point", list(KILL_AT))
def test_sigkill_while_ingest_publishes_never_leaves_a_mismatched_dataset(point: str, tmp_path: Path):
    ws = tmp_path / "ws"
    ingest(small_csv(tmp_path / "old.csv"), workspace=ws)
    old_dataset = sha256(ws / "dataset.parquet")
    script = "import os, signal\nimport owntrain.data as d\n" \
             "def die():\n    os.kill(os.getpid(), signal.SIGKILL)\n" + KILL_AT[point] + "\n" \
             f"d.ingest({str(small_csv(tmp_path / 'new.csv', n=80, seed=1))!r}, workspace={str(ws)!r})\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, env=ENV, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert len(list(ws.glob(".ingest-*"))) == 1

    if (ws / "dataset.parquet").exists():
        assert point == "dataset-written"
        assert sha256(ws / "dataset.parquet") == old_dataset
        assert_consistent(ws)
    else:
        assert point != "dataset-written"
        assert_fit_asks_for_ingest(ws)

    ingest(small_csv(tmp_path / "again.csv", seed=2), workspace=ws)
    assert not list(ws.glob(".ingest-*"))
    assert_consistent(ws)


def test_ctrl_c_during_ingest_prints_one_line_and_cleans_up(big_csv: Path, tmp_path: Path):
    ws = tmp_path / "ws"
    ingest(small_csv(tmp_path / "old.csv"), workspace=ws)
    before = sha256(ws / "dataset.parquet")
    proc = owntrain("ingest", str(big_csv), "-w", str(ws))
    wait_for(str(ws / f".ingest-{proc.pid}" / "stage.parquet"), proc)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    lines = err.decode().splitlines()
    # one message; besides it only the label of the progress bar shown for inputs over 20 MB
    assert [line for line in lines if line != "Reading"] == [lines[-1]], lines
    assert lines[-1].startswith("Interrupted") and "Traceback" not in err.decode()
    assert not list(ws.glob(".ingest-*")) and sha256(ws / "dataset.parquet") == before
    assert_consistent(ws)


# --------------------------------------------------------------------------- SIGKILL and Ctrl-C during fit


def fit_workspace(root: Path) -> Path:
    """2,000 rows: an epoch of the tiny model takes about a second, so a 10-epoch fit can be caught mid-run."""
    return write_workspace(root / "ws", synthetic_rows(("neg", "pos"), 2000, seed=4), ("neg", "pos"), seed=4)


def start_fit(ws: Path, epochs: int = 10) -> subprocess.Popen:
    return owntrain("fit", "-w", str(ws), "--epochs", str(epochs), "--patience", "100", *TINY_ARGS)


def only_run(ws: Path) -> Path:
    runs = [p for p in (ws / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1
    return runs[0]


def resume_and_check(ws: Path, run: Path, epochs: int = 10) -> None:
    done = json.loads((run / "state.json").read_text())["epochs_done"]
    assert 0 <= done < epochs and not (run / "model.keras").exists()
    result = runner.invoke(app, ["fit", "--resume", "-w", str(ws)])
    assert result.exit_code == 0, result.output
    assert (f"resumed after epoch {done}" in result.output) == (done > 0)
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == "finished" and state["epochs_done"] == epochs
    history = json.loads((run / "history.json").read_text())
    assert len(history["loss"]) == epochs  # every epoch exactly once, none lost or repeated
    assert load_bundle(ws / "bundle").manifest["run_id"] == run.name


def test_sigkill_during_fit_then_resume_finishes(tmp_path: Path):
    ws = fit_workspace(tmp_path)
    proc = start_fit(ws)
    wait_for(str(ws / "runs" / "*" / "checkpoints" / "epoch-001.keras"), proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    # state.json follows the checkpoint by milliseconds: a kill in between resumes from epoch 0
    resume_and_check(ws, only_run(ws))


@pytest.mark.parametrize("when", ["after the first checkpoint", "before the first epoch ends"])
def test_ctrl_c_during_fit_prints_one_line_and_can_resume(when: str, tmp_path: Path):
    ws = fit_workspace(tmp_path)
    proc = start_fit(ws)
    if when == "after the first checkpoint":
        wait_for(str(ws / "runs" / "*" / "checkpoints" / "epoch-001.keras"), proc)
    else:
        wait_for(str(ws / "runs" / "*" / "settings.json"), proc)  # written last before training starts
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    lines = err.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Interrupted") and "owntrain fit --resume" in lines[0]
    resume_and_check(ws, only_run(ws))


def test_ctrl_c_while_tensorflow_loads_prints_one_line(tmp_path: Path, monkeypatch):
    import owntrain.model

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(owntrain.model, "import_tensorflow_quietly", interrupted)
    result = runner.invoke(app, ["fit", "-w", str(fit_workspace(tmp_path))])
    assert result.exit_code == 130
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Interrupted"), lines


# --------------------------------------------------------------------------- a full disk during export


class Trained:
    def __init__(self, root: Path) -> None:
        from owntrain.train import fit

        self.ws = write_workspace(root / "ws", synthetic_rows(("neg", "pos"), 300, seed=5), ("neg", "pos"), seed=5)
        self.fit = fit(self.ws, **TINY)
        self.bundle = self.fit.bundle_dir


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return Trained(tmp_path_factory.mktemp("faults"))


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def fail_writing(name: str, monkeypatch) -> None:
    """Make the export's write of ``name`` hit a full disk (after writing part of it)."""
    import keras

    import owntrain.bundle as bundle_module

    if name == "model.keras":
        def save(self, filepath, *args, **kwargs):
            Path(filepath).write_bytes(b"PK\x03\x04 half a model")
            disk_full()

        monkeypatch.setattr(keras.Model, "save", save)
    elif name == "rename":
        real = os.replace

        def replace(src, dst, *args, **kwargs):
            if Path(src).name.startswith(".out.tmp-") and Path(dst).name == "out":
                disk_full()
            return real(src, dst, *args, **kwargs)

        monkeypatch.setattr(bundle_module.os, "replace", replace)
    else:
        real_write = bundle_module._write_file

        def write(path: Path, data: bytes) -> None:
            if path.name == name:
                path.write_bytes(data[: len(data) // 2])
                disk_full()
            real_write(path, data)

        monkeypatch.setattr(bundle_module, "_write_file", write)


WRITES = ["model.keras", "vocab.json", "preprocessing.json", "labels.json", "metrics.json", "MODEL_CARD.md",
          "manifest.json", "rename"]


@pytest.mark.parametrize("failing", WRITES)
def test_full_disk_during_export_keeps_the_previous_bundle(trained: Trained, tmp_path: Path, monkeypatch,
                                                           failing: str):
    out = Path(shutil.copytree(trained.bundle, tmp_path / "out"))
    before = inspect_bundle(out).fingerprint
    texts = ["a great and wonderful film", "awful boring plot"]
    expected = load_bundle(out).predict(texts).probabilities
    fail_writing(failing, monkeypatch)
    with pytest.raises(BundleError, match=r"Could not write the bundle .*No space left on device.*previous bundle"
                                          r".*unchanged.*Free disk space"):
        export_bundle(trained.fit, out)
    monkeypatch.undo()
    report = inspect_bundle(out)
    assert report.ok and report.fingerprint == before and not report.unlisted
    assert (load_bundle(out).predict(texts).probabilities == expected).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary or moved-aside folder left


def test_full_disk_while_writing_an_archive_keeps_the_previous_one(trained: Trained, tmp_path: Path, monkeypatch):
    import owntrain.archive as archive_module

    archive = export_archive(trained.bundle, tmp_path / "model.tar.gz")
    before = sha256(archive)

    def half_then_full(tmp: Path, *args) -> None:
        tmp.write_bytes(b"\x1f\x8b half an archive")
        disk_full()

    monkeypatch.setattr(archive_module, "_write_tar_gz", half_then_full)
    with pytest.raises(BundleError, match="Could not write .*model.tar.gz.*No space left on device"):
        export_archive(trained.bundle, archive)
    result = runner.invoke(app, ["export", "-w", str(trained.ws), "-o", str(archive)])
    assert result.exit_code == 2 and "No space left on device" in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output
    monkeypatch.undo()
    assert sha256(archive) == before and load_bundle(archive).fingerprint == inspect_bundle(trained.bundle).fingerprint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tar.gz"]


def test_full_disk_when_fit_exports_keeps_the_previous_bundle(trained: Trained, tmp_path: Path, monkeypatch):
    ws = Path(shutil.copytree(trained.ws, tmp_path / "ws"))
    before = inspect_bundle(ws / "bundle").fingerprint
    import owntrain.bundle as bundle_module

    real_write = bundle_module._write_file

    def write(path: Path, data: bytes) -> None:
        if path.name == "manifest.json":
            disk_full()
        real_write(path, data)

    monkeypatch.setattr(bundle_module, "_write_file", write)
    args = ["fit", "-w", str(ws), "--epochs", "1", *TINY_ARGS]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert "Could not write the bundle" in result.stderr and "No space left on device" in result.stderr
    assert inspect_bundle(ws / "bundle").fingerprint == before  # the old bundle still scores
    load_bundle(ws / "bundle")
    monkeypatch.undo()
    # the run itself finished; once there is space again, `owntrain export` makes its bundle
    result = runner.invoke(app, ["export", "-w", str(ws), "-o", str(tmp_path / "new.tar.gz")])
    assert result.exit_code == 0, result.output
    newest = sorted((ws / "runs").iterdir())[-1].name
    assert inspect_bundle(ws / "bundle").manifest["run_id"] == newest != trained.fit.run_id


# --------------------------------------------------------------------------- a file cut short, a resumed patience


@pytest.mark.parametrize("damage", ["cut short", "garbled"])
def test_a_gzip_file_cut_short_is_a_clear_error_and_publishes_nothing(trained: Trained, tmp_path: Path, damage: str):
    import gzip

    from owntrain.errors import InputError
    from owntrain.score import score_file

    rows = synthetic_rows(("negative", "positive"), 20_000, seed=3)
    data = gzip.compress(pd.DataFrame(rows, columns=["text", "label"]).to_csv(index=False).encode())
    src = tmp_path / "copied.csv.gz"
    src.write_bytes(data[: len(data) // 2] if damage == "cut short" else data[:20] + b"\x00garbage" * 4000)
    ws = tmp_path / "ws"
    ingest(small_csv(tmp_path / "old.csv"), workspace=ws)
    before = sha256(ws / "dataset.parquet")
    with pytest.raises(InputError, match="cannot be read.*damaged or was copied incompletely"):
        ingest(src, workspace=ws)
    assert sha256(ws / "dataset.parquet") == before and not list(ws.glob(".ingest-*"))
    with pytest.raises(InputError, match="cannot be read.*damaged or was copied incompletely"):
        score_file(src, bundle=trained.bundle, output=tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists() and not list(tmp_path.glob(".out.csv.tmp-*"))
    result = runner.invoke(app, ["ingest", str(src), "-w", str(ws)])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output


def test_a_resumed_run_keeps_its_own_patience(make_workspace):
    from owntrain.train import fit

    ws = make_workspace(("neg", "pos"), 200)

    def stop_after_first_epoch(event):
        if event.stage == "epoch" and event.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(ws, progress=stop_after_first_epoch, patience=7, **{**TINY, "epochs": 3})
    run = only_run(ws)
    fit(ws, resume=True)  # no patience given: the run's own, not the default
    assert json.loads((run / "settings.json").read_text())["training"]["patience"] == 7
    fit(ws, resume=True, epochs=4, patience=1)  # given: it applies
    assert json.loads((run / "settings.json").read_text())["training"]["patience"] == 1
