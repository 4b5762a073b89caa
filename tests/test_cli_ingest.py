"""The CLI for ingest through Typer's CliRunner, and a start-up without heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from owntrain.cli import app

from test_ingest import rows, write_csv

runner = CliRunner()
SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples"
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "imdb" / "train.csv").is_file():
        pytest.skip(f"real corpora not found at {SHARED_DATA} (the checkout's ../shared/data)")
    return SHARED_DATA


def test_ingest_prints_a_summary_and_exits_0(tmp_path):
    src = write_csv(tmp_path / "r.csv", ["text", "label"], rows(10) + [("", "positive")])
    result = runner.invoke(app, ["ingest", str(src), "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 0, result.output
    assert "rows read 21   kept 20   rejected 1" in result.stdout
    assert "1 empty_text" in result.stdout
    assert "rejects.csv" in result.stderr
    report = json.loads((tmp_path / "ws" / "ingest_report.json").read_text())
    assert report["rows"] == {"read": 21, "kept": 20, "rejected": 1}


def test_user_error_is_one_line_on_stderr_with_exit_2(tmp_path):
    src = write_csv(tmp_path / "r.csv", ["titel", "stars"], [("gut", 5)] * 5)
    result = runner.invoke(app, ["ingest", str(src), "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: Could not find the text column")
    assert "--text-col" in result.stderr
    assert "Traceback" not in result.output


def test_encoding_error_through_cli(tmp_path):
    src = write_csv(tmp_path / "latin.csv", ["text", "label"],
                    [(f"Grüße {i}", "a" if i % 2 else "b") for i in range(10)], encoding="latin-1")
    bad = runner.invoke(app, ["ingest", str(src), "-w", str(tmp_path / "ws")])
    assert bad.exit_code == 2 and "--encoding" in bad.stderr and "line 2" in bad.stderr
    good = runner.invoke(app, ["ingest", str(src), "-w", str(tmp_path / "ws"), "--encoding", "latin-1"])
    assert good.exit_code == 0, good.output


def test_bad_split_option_is_a_usage_error(tmp_path):
    src = write_csv(tmp_path / "r.csv", ["text", "label"], rows(10))
    result = runner.invoke(app, ["ingest", str(src), "-w", str(tmp_path / "ws"), "--split", "0.8,0.2"])
    assert result.exit_code == 2 and "0.8,0.1,0.1" in result.output


def test_sample_reviews_ingest_with_joined_columns(tmp_path):
    result = runner.invoke(app, ["ingest", str(SAMPLES / "reviews.csv"), "-w", str(tmp_path / "ws"),
                                 "--text-col", "title,pros,cons,suggestions"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "ws" / "ingest_report.json").read_text())
    assert report["rows"]["read"] >= 400 and report["rows"]["rejected"] == 0
    assert report["labels"] == ["negative", "positive"]


def test_help_lists_commands_without_importing_tensorflow_or_spacy():
    code = ("import sys; from owntrain.cli import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
            "print(r.output); heavy = [m for m in ('tensorflow', 'keras', 'spacy', 'pandas', 'pyarrow') "
            "if m in sys.modules]; assert not heavy, heavy")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "ingest" in out.stdout


def test_python_dash_m_entry_point():
    out = subprocess.run([sys.executable, "-m", "owntrain", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("owntrain ")


@pytest.mark.slow
def test_real_corpora_ingest_with_expected_counts(tmp_path, shared_data):
    imdb = shared_data / "imdb"
    result = runner.invoke(app, ["ingest", str(imdb / "train.csv"), str(imdb / "test.csv"),
                                 "-w", str(tmp_path / "imdb"), "--label-col", "sentiment"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "imdb" / "ingest_report.json").read_text())
    assert report["rows"] == {"read": 50000, "kept": 50000, "rejected": 0}
    assert report["label_counts"] == {"neg": 25000, "pos": 25000}
    assert report["split_sizes"]["test"] == 25000
    for name, label_col, expected in (("amazon_reviews_de", "stars", 17456), ("amazon_reviews_fr", "stars", 17428)):
        folder = shared_data / name
        r = runner.invoke(app, ["ingest", str(folder / "train.csv"), str(folder / "test.csv"),
                                "-w", str(tmp_path / name), "--label-col", label_col])
        assert r.exit_code == 0, r.output
        rep = json.loads((tmp_path / name / "ingest_report.json").read_text())
        assert rep["rows"]["read"] == expected and rep["rows"]["kept"] + rep["rows"]["rejected"] == expected
        assert rep["labels"] == ["1", "2", "3", "4", "5"]
    r = runner.invoke(app, ["ingest", str(shared_data / "filmstarts_de" / "reviews.csv"), "-w", str(tmp_path / "fs")])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "fs" / "ingest_report.json").read_text())
    assert rep["rows"]["read"] == 3886
    sst = shared_data / "sst2"
    r = runner.invoke(app, ["ingest", str(sst / "train.csv"), str(sst / "dev.csv"), str(sst / "test.csv"),
                            "-w", str(tmp_path / "sst")])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "sst" / "ingest_report.json").read_text())
    assert rep["rows"]["read"] == 6920 + 872 + 1821
