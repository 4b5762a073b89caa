"""`score`: every column and row kept in order, empty and malformed rows marked, formats, CLI."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import synthetic_rows, write_workspace
from owntrain.bundle import export_bundle, load_bundle
from owntrain.cli import app
from owntrain.errors import ColumnNotFoundError, EncodingError, InputError
from owntrain.score import default_output, score_file, score_texts

TINY = dict(max_len=40, embedding_dim=8, units=8, epochs=1, batch_size=32, learning_rate=1e-2, min_df=1, ngram_buckets=256)
ADDED = ["predicted_label", "p_neg", "p_pos", "threshold", "score_status", "score_detail"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """A tiny two-class run, its bundle folder and the loaded bundle."""
    from owntrain.train import fit

    root = tmp_path_factory.mktemp("score")
    ws = write_workspace(root / "ws", synthetic_rows(("neg", "pos"), 300, seed=1), ("neg", "pos"), seed=1)
    result = fit(ws, **TINY)
    folder = export_bundle(result, ws / "bundle")
    return ws, result, folder, load_bundle(folder)


@pytest.fixture
def frame() -> pd.DataFrame:
    """An input table: the text column is not first; some texts are empty or nothing but markup."""
    texts = ["a great film", "", "awful and boring", None, "<br /> &nbsp; ", "wonderful superb story", "dull"]
    return pd.DataFrame({
        "id": range(101, 101 + len(texts)),
        "note": [f"n{i}" for i in range(len(texts))],
        "text": texts,
        "stars": [5.0, None, 1.0, 2.0, 3.0, 4.5, 1.5],
    })


def expected_for(bundle, texts):
    return bundle.predict([t if isinstance(t, str) else None for t in texts])


def check_rows(out: pd.DataFrame, frame: pd.DataFrame, bundle) -> None:
    """The scored rows keep the input's rows and values in order and carry the bundle's predictions."""
    assert list(out.columns) == list(frame.columns) + ADDED
    assert out["id"].astype(int).tolist() == frame["id"].tolist()
    assert out["note"].tolist() == frame["note"].tolist()
    p = expected_for(bundle, frame["text"].tolist())
    assert out["score_status"].tolist() == ["ok", "empty_text", "ok", "empty_text", "empty_text", "ok", "ok"]
    ok = out["score_status"] == "ok"
    assert out.loc[ok, "predicted_label"].tolist() == [lab for lab in p.labels if lab is not None]
    assert np.allclose(out.loc[ok, ["p_neg", "p_pos"]].astype(float).to_numpy(), p.probabilities[ok.to_numpy()],
                       atol=1e-6)
    assert out.loc[~ok, "predicted_label"].isna().all() and out.loc[~ok, "p_pos"].isna().all()
    assert out["threshold"].astype(float).eq(bundle.threshold).all()
    assert out.loc[1, "score_detail"].endswith("no text")
    assert out.loc[4, "score_detail"].endswith("text is empty after normalisation")


def test_csv_to_csv_keeps_every_column_and_row(trained, frame, tmp_path: Path):
    *_, bundle = trained
    src = tmp_path / "new.csv"
    frame.to_csv(src, index=False)
    events = []
    result = score_file(src, bundle=bundle, progress=events.append)
    assert result.output == tmp_path / "new.scored.csv" and result.format == "csv"
    out = pd.read_csv(result.output, keep_default_na=False, na_values=[""])
    check_rows(out, frame, bundle)
    assert (result.rows, result.scored, result.empty, result.malformed) == (7, 4, 3, 0)
    assert sum(result.label_counts.values()) == 4
    assert events and events[-1].rows == 7 and events[-1].fraction == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.csv", "new.scored.csv"]  # no temporary file left


def test_parquet_to_parquet_keeps_the_column_types(trained, frame, tmp_path: Path):
    *_, bundle = trained
    src = tmp_path / "new.parquet"
    frame.to_parquet(src, index=False)
    result = score_file(src, bundle=bundle)
    out = pd.read_parquet(result.output)
    check_rows(out, frame, bundle)
    assert out["id"].dtype == np.int64 and out["stars"].dtype == np.float64 and out["p_pos"].dtype == np.float64
    assert out.loc[3, "text"] is None or pd.isna(out.loc[3, "text"])


def test_jsonl_to_jsonl(trained, frame, tmp_path: Path):
    *_, bundle = trained
    src = tmp_path / "new.jsonl"
    frame.to_json(src, orient="records", lines=True)
    result = score_file(src, bundle=bundle)
    lines = result.output.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(frame)
    objects = [json.loads(line) for line in lines]
    assert list(objects[0]) == list(frame.columns) + ADDED
    check_rows(pd.DataFrame(objects), frame, bundle)


def test_other_formats_by_output_name(trained, frame, tmp_path: Path):
    *_, bundle = trained
    src = tmp_path / "new.csv"
    frame.to_csv(src, index=False)
    check_rows(pd.read_parquet(score_file(src, bundle=bundle, output=tmp_path / "o.parquet").output), frame, bundle)
    tsv = score_file(src, bundle=bundle, output=tmp_path / "o.tsv").output
    check_rows(pd.read_csv(tsv, sep="\t", keep_default_na=False, na_values=[""]), frame, bundle)
    gz = score_file(src, bundle=bundle, output=tmp_path / "o.jsonl.gz").output
    with gzip.open(gz, "rt", encoding="utf-8") as fh:
        check_rows(pd.DataFrame([json.loads(line) for line in fh]), frame, bundle)


def test_semicolon_csv_stays_semicolon_and_batches_do_not_matter(trained, frame, tmp_path: Path):
    *_, bundle = trained
    src = tmp_path / "excel.csv"
    frame.to_csv(src, index=False, sep=";")
    one = score_file(src, bundle=bundle, output=tmp_path / "one.csv", batch_rows=100_000)
    many = score_file(src, bundle=bundle, output=tmp_path / "many.csv", batch_rows=2)
    assert one.output.read_text(encoding="utf-8").splitlines()[0].startswith("id;note;text;stars;predicted_label")
    assert one.output.read_bytes() == many.output.read_bytes()


def test_malformed_rows_are_kept_and_marked(trained, tmp_path: Path):
    *_, bundle = trained
    src = tmp_path / "ragged.csv"
    src.write_text("id,text\n1,great film\n2,too,many,fields\n3,awful film\n", encoding="utf-8")
    result = score_file(src, bundle=bundle)
    with open(result.output, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == ["1", "", "3"]
    assert [r["score_status"] for r in rows] == ["ok", "malformed_row", "ok"]
    assert "line 3: wrong number of fields" in rows[1]["score_detail"] and "too,many,fields" in rows[1]["score_detail"]
    assert result.malformed == 1 and result.scored == 2

    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text('{"text": "great"}\n[1, 2]\n{"text": "dull"\n{"text": "awful"}\n', encoding="utf-8")
    objects = [json.loads(line) for line in score_file(jsonl, bundle=bundle).output.read_text().splitlines()]
    assert [o["score_status"] for o in objects] == ["ok", "malformed_row", "malformed_row", "ok"]
    assert "not a JSON object" in objects[1]["score_detail"]


def test_text_columns(trained, tmp_path: Path):
    *_, bundle = trained
    src = tmp_path / "reviews.csv"
    pd.DataFrame({"title": ["great", ""], "body_text": ["wonderful film", ""], "x": [1, 2]}).to_csv(src, index=False)
    with pytest.raises(ColumnNotFoundError, match="Could not find the text column .*Columns: title, body_text, x.*--text-col"):
        score_file(src, bundle=bundle)
    result = score_file(src, bundle=bundle, text_col=["title", "body_text"])
    assert result.text_columns == ["title", "body_text"] and (result.scored, result.empty) == (1, 1)
    joined = score_texts(["great\nwonderful film"], bundle)
    out = pd.read_csv(result.output)
    assert np.isclose(out.loc[0, "p_pos"], joined.probabilities[0, 1], atol=1e-6)
    with pytest.raises(ColumnNotFoundError, match="Column 'nope' not found"):
        score_file(src, bundle=bundle, text_col="nope")


def test_added_column_names_do_not_clash(trained, tmp_path: Path):
    *_, bundle = trained
    src = tmp_path / "again.csv"
    pd.DataFrame({"text": ["great"], "predicted_label": ["old"], "score_status": ["x"]}).to_csv(src, index=False)
    result = score_file(src, bundle=bundle)
    header = result.output.read_text().splitlines()[0].split(",")
    assert header == ["text", "predicted_label", "score_status", "predicted_label_2", "p_neg", "p_pos", "threshold",
                      "score_status_2", "score_detail"]


def test_input_problems_are_clear_and_leave_no_output(trained, tmp_path: Path):
    *_, bundle = trained
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match="is empty"):
        score_file(empty, bundle=bundle)
    header_only = tmp_path / "header.csv"
    header_only.write_text("id,text\n")
    result = score_file(header_only, bundle=bundle)
    assert result.rows == 0 and result.output.read_text().splitlines() == ["id,text," + ",".join(ADDED)]
    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,text\n".encode() + b"1,great film\n" * 30000 + "2,schön\n".encode("latin-1"))
    with pytest.raises(EncodingError, match="line 30002.*--encoding"):
        score_file(latin, bundle=bundle, batch_rows=1000)
    assert not (tmp_path / "latin.scored.csv").exists()
    assert score_file(latin, bundle=bundle, encoding="latin-1").rows == 30001
    with pytest.raises(InputError, match="is the input file itself"):
        score_file(header_only, bundle=bundle, output=header_only)
    with pytest.raises(InputError, match="batch_rows"):
        score_file(header_only, bundle=bundle, batch_rows=0)


def test_interrupted_scoring_leaves_no_half_file(trained, frame, tmp_path: Path):
    *_, bundle = trained
    src = tmp_path / "big.csv"
    pd.concat([frame] * 50).to_csv(src, index=False)

    def stop(event):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        score_file(src, bundle=bundle, batch_rows=10, progress=stop)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv"]


def test_default_output_names():
    assert default_output(Path("d/new.csv")) == Path("d/new.scored.csv")
    assert default_output(Path("new.csv.gz")) == Path("new.scored.csv.gz")
    assert default_output(Path("a.b.parquet")) == Path("a.b.scored.parquet")


def test_scored_accuracy_equals_evaluate(trained, tmp_path: Path):
    ws, result, folder, bundle = trained
    from owntrain.evaluate import evaluate

    df = pd.read_parquet(ws / "dataset.parquet")
    test = df[df["split"] == "test"][["text", "label"]]
    src = tmp_path / "test.csv"
    test.to_csv(src, index=False)
    out = pd.read_csv(score_file(src, bundle=folder).output)
    accuracy = float((out["predicted_label"] == out["label"]).mean())
    assert accuracy == pytest.approx(evaluate(workspace=ws).metrics["accuracy"], abs=1e-6)
    assert accuracy == pytest.approx(result.metrics["test"]["accuracy"], abs=1e-6)


def test_three_classes_have_no_threshold_column(tmp_path: Path):
    from owntrain.train import fit

    labels = ("a", "b", "c")
    ws = write_workspace(tmp_path / "ws", synthetic_rows(labels, 240, seed=2), labels, seed=2)
    folder = export_bundle(fit(ws, **TINY), ws / "bundle")
    bundle = load_bundle(folder)
    assert bundle.threshold is None and bundle.classes == ["a", "b", "c"]
    src = tmp_path / "new.csv"
    pd.DataFrame({"text": ["great wonderful", "awful dull", "funny witty", ""]}).to_csv(src, index=False)
    out = pd.read_csv(score_file(src, bundle=bundle).output)
    assert list(out.columns) == ["text", "predicted_label", "p_a", "p_b", "p_c", "score_status", "score_detail"]
    probs = out.loc[:2, ["p_a", "p_b", "p_c"]].to_numpy()
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert out.loc[:2, "predicted_label"].tolist() == [["a", "b", "c"][i] for i in probs.argmax(axis=1)]


# --------------------------------------------------------------------------- CLI


runner = CliRunner()


def test_score_command_writes_the_scored_file(trained, frame, tmp_path: Path):
    ws, _, folder, bundle = trained
    src = tmp_path / "new.csv"
    frame.to_csv(src, index=False)
    result = runner.invoke(app, ["score", str(src), "-w", str(ws)])  # default bundle: <workspace>/bundle
    assert result.exit_code == 0, result.output
    assert "Scored 7 rows" in result.output and "3 empty text" in result.output
    check_rows(pd.read_csv(tmp_path / "new.scored.csv", keep_default_na=False, na_values=[""]), frame, bundle)
    out = tmp_path / "o.parquet"
    result = runner.invoke(app, ["score", str(src), "--bundle", str(folder), "-o", str(out), "--text-col", "text"])
    assert result.exit_code == 0, result.output
    assert len(pd.read_parquet(out)) == 7


def test_score_command_texts_and_stdin(trained):
    _, _, folder, bundle = trained
    expected = bundle.predict(["a great film", "awful"])
    result = runner.invoke(app, ["score", "--bundle", str(folder), "--text", "a great film", "--text", "awful"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == expected.labels
    assert f"pos {expected.probabilities[0, 1]:.4f}" in lines[0]
    result = runner.invoke(app, ["score", "-", "--bundle", str(folder), "--json"], input="a great film\n\nawful\n")
    assert result.exit_code == 0, result.output
    objects = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [o["label"] for o in objects] == [expected.labels[0], None, expected.labels[1]]
    assert objects[1]["status"] == "empty_text"
    assert objects[0]["probabilities"]["pos"] == pytest.approx(expected.probabilities[0, 1])


def test_score_command_errors(trained, tmp_path: Path):
    _, _, folder, _ = trained
    cases = [
        (["score", "--bundle", str(folder)], "Nothing to score"),
        (["score", str(tmp_path / "missing.csv"), "--bundle", str(folder)], "no such file"),
        (["score", "--text", "x", "--bundle", str(tmp_path / "nope")], "No bundle at"),
        (["score", "--text", "x", "-w", str(tmp_path / "no-workspace")], "No bundle at"),
        (["score", "x.csv", "--text", "y", "--bundle", str(folder)], "not both"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output


def test_a_full_disk_fails_cleanly(trained, frame, tmp_path: Path, monkeypatch):
    import owntrain.score as score_module
    from owntrain.errors import OutputError

    *_, bundle = trained
    src = tmp_path / "new.csv"
    frame.to_csv(src, index=False)

    def disk_full(self, values, added):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(score_module._DelimitedWriter, "write", disk_full)
    with pytest.raises(OutputError, match="No space left on device.*No scored file was written"):
        score_file(src, bundle=bundle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.csv"]
    result = runner.invoke(app, ["score", str(src), "--bundle", str(trained[2])])
    assert result.exit_code == 2 and "No space left on device" in result.output and "Traceback" not in result.output


def test_temporaries_of_a_killed_run_are_removed(trained, frame, tmp_path: Path):
    import subprocess
    import sys

    *_, bundle = trained
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    src = tmp_path / "new.csv"
    frame.to_csv(src, index=False)
    (tmp_path / f".new.scored.csv.tmp-{proc.pid}-0badc0de").write_text("half a file")
    score_file(src, bundle=bundle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.csv", "new.scored.csv"]
