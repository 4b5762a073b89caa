"""Scoring input unlike the training data: every row that goes in comes out, or a clear error says why.

Missing text column, empty files, files that are not UTF-8, texts that are all out of vocabulary,
a text of 1,000,000 words, random bytes and random Unicode (lone surrogates, NUL, right-to-left
marks, emoji, bare carriage returns) in CSV and JSON Lines, written as CSV, JSON Lines or Parquet.
A file is either scored with rows out == rows in, in order, or refused with an OwntrainError and
no output file; never a traceback.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from conftest import synthetic_rows, write_workspace
from owntrain.cli import app
from owntrain.errors import ColumnNotFoundError, EncodingError, InputError, OwntrainError
from owntrain.score import score_file

TINY = dict(max_len=40, embedding_dim=8, units=8, epochs=1, batch_size=32, learning_rate=1e-2, min_df=1, ngram_buckets=256)
EXAMPLES = 100
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
NASTY = st.sampled_from(["\u0301", "\u200f", "\u202e", "🙂", "👩‍👩‍👧", "\x00", "\r", "\n", "\r\n", '"', "'", ";",
                         ",", "\t", "<br />", "&amp;", "\ufeff", "ß", "Ä", "\u2028", "\ud800", "\udfff", "great",
                         "awful", " "])
ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)
TEXTS = st.lists(st.one_of(ANY_TEXT, NASTY), max_size=6).map("".join)
runner = CliRunner()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory):
    from owntrain.bundle import load_bundle
    from owntrain.train import fit

    root = tmp_path_factory.mktemp("score-hostile")
    ws = write_workspace(root / "ws", synthetic_rows(("neg", "pos"), 300, seed=7), ("neg", "pos"), seed=7)
    return load_bundle(fit(ws, **TINY).bundle_dir)


def output_rows(path: Path) -> list[dict]:
    """The scored rows as dicts, read back the way a user would."""
    name = path.name.lower()
    if name.endswith(".parquet"):
        return pq.read_table(path).to_pylist()
    if name.endswith(".jsonl"):
        # lines end with "\n" only (str.splitlines would also split at a raw U+0085 or U+2028 inside a value)
        return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]
    with open(path, encoding="utf-8", newline="") as fh:
        header = fh.readline()
        fh.seek(0)
        delimiter = max(",;\t", key=header.count)  # the input's delimiter is kept
        return list(csv.DictReader(fh, delimiter=delimiter))


def csv_records(data: bytes) -> int:
    """Rows of a CSV as a spreadsheet sees them: every non-blank line after the header."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    ncols = len(rows[0])
    return sum(1 for row in rows[1:] if row and not (len(row) == 1 and row[0] == "" and ncols > 1))


def check_scored(result, rows_in: int, classes=("neg", "pos")) -> list[dict]:
    rows = output_rows(result.output)
    assert result.rows == len(rows) == rows_in
    assert result.scored + result.empty + result.malformed == rows_in
    for row in rows:
        status = row["score_status"]
        assert status in ("ok", "empty_text", "malformed_row")
        if status == "ok":
            assert row["predicted_label"] in classes
            p = [float(row[f"p_{c}"]) for c in classes]
            assert all(np.isfinite(p)) and abs(sum(p) - 1) < 1e-4
        else:
            assert row["predicted_label"] in (None, "") and row["score_detail"]
    return rows


def assert_refused_without_output(call, tmp_path: Path, error=OwntrainError, match: str | None = None) -> None:
    before = set(tmp_path.iterdir())
    with pytest.raises(error, match=match):
        call()
    assert set(tmp_path.iterdir()) == before  # no output, no temporary file


# --------------------------------------------------------------------------- missing columns, empty files


def test_a_missing_text_column_is_a_clear_error(bundle, tmp_path: Path):
    src = tmp_path / "tickets.csv"
    pd.DataFrame({"id": [1, 2], "subject": ["great", "awful"], "prio": [1, 2]}).to_csv(src, index=False)
    assert_refused_without_output(lambda: score_file(src, bundle=bundle), tmp_path, ColumnNotFoundError,
                                  "Could not find the text column .*Columns: id, subject, prio.*--text-col")
    jsonl = tmp_path / "tickets.jsonl"
    jsonl.write_text('{"id": 1, "subject": "great"}\n', encoding="utf-8")
    assert_refused_without_output(lambda: score_file(jsonl, bundle=bundle), tmp_path, ColumnNotFoundError,
                                  "Columns: id, subject")
    parquet = tmp_path / "tickets.parquet"
    pd.DataFrame({"subject": ["great"]}).to_parquet(parquet)
    assert_refused_without_output(lambda: score_file(parquet, bundle=bundle, text_col="body"), tmp_path,
                                  ColumnNotFoundError, "Column 'body' not found")
    result = runner.invoke(app, ["score", str(src), "--bundle", str(bundle.path)])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1 and "--text-col" in result.stderr
    assert "Traceback" not in result.output
    # with the column named, every row is scored
    check_scored(score_file(src, bundle=bundle, text_col="subject"), 2)


def test_rows_without_the_text_key_are_kept_and_marked(bundle, tmp_path: Path):
    src = tmp_path / "mixed.jsonl"
    lines = ['{"id": 1, "text": "a great film"}', '{"id": 2}', '{"id": 3, "text": null}', '{"id": 4, "text": 42}',
             '{"id": 5, "text": ["list", "of", "words"]}', '{"id": 6, "text": {"nested": "great"}}', '{"id": 7, "text": ""}']
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for ext in ("jsonl", "csv", "parquet"):
        rows = check_scored(score_file(src, bundle=bundle, output=tmp_path / f"out.{ext}"), 7)
        assert [str(r["id"]) for r in rows] == [str(i) for i in range(1, 8)]
        assert [r["score_status"] for r in rows] == ["ok", "empty_text", "empty_text", "ok", "ok", "ok", "empty_text"]


@pytest.mark.parametrize("name, content, match", [
    ("empty.csv", b"", "is empty"),
    ("blank.csv", b"\n\n  \n", "is empty"),
    ("empty.tsv", b"", "is empty"),
    ("empty.jsonl", b"", "holds no JSON objects"),
    ("blank.jsonl", b"\n\n", "holds no JSON objects"),
    ("arrays.jsonl", b"[1]\n[2]\n", "holds no JSON objects"),
    ("empty.csv.gz", gzip.compress(b""), "is empty"),
    ("empty.parquet", b"", "not a readable Parquet file"),
])
def test_an_empty_file_is_a_clear_error(bundle, tmp_path: Path, name: str, content: bytes, match: str):
    src = tmp_path / name
    src.write_bytes(content)
    assert_refused_without_output(lambda: score_file(src, bundle=bundle), tmp_path, InputError, match)
    result = runner.invoke(app, ["score", str(src), "--bundle", str(bundle.path)])
    assert result.exit_code == 2 and result.stderr.startswith("Error: ") and "Traceback" not in result.output


@pytest.mark.parametrize("ext", ["csv", "jsonl", "parquet"])
def test_a_file_with_no_rows_gives_a_scored_file_with_no_rows(bundle, tmp_path: Path, ext: str):
    src = tmp_path / "none.parquet"
    pq.write_table(pa.table({"id": pa.array([], pa.int64()), "text": pa.array([], pa.string())}), src)
    result = score_file(src, bundle=bundle, output=tmp_path / f"out.{ext}")
    assert result.rows == 0 and output_rows(result.output) == []
    if ext == "parquet":
        assert pq.read_schema(result.output).names == ["id", "text", *result.added_columns]


# --------------------------------------------------------------------------- not UTF-8


def test_an_excel_file_in_cp1252_is_refused_then_scored_with_its_encoding(bundle, tmp_path: Path):
    src = tmp_path / "excel.csv"
    lines = ["Nr;Kommentar"] + [f"{i};Schöne Grüße, ein großartiger Film Nr. {i}" for i in range(40)]
    src.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    assert_refused_without_output(lambda: score_file(src, bundle=bundle), tmp_path, EncodingError,
                                  r"line 2, column \d+ \(byte 0xf6\) is not valid utf-8.*--encoding")
    result = runner.invoke(app, ["score", str(src), "--bundle", str(bundle.path)])
    assert result.exit_code == 2 and "--encoding" in result.stderr and len(result.stderr.splitlines()) == 1
    rows = check_scored(score_file(src, bundle=bundle, encoding="cp1252"), 40)
    assert rows[0]["Kommentar"] == "Schöne Grüße, ein großartiger Film Nr. 0"
    assert (tmp_path / "excel.scored.csv").read_bytes().decode("utf-8").startswith("Nr;Kommentar;predicted_label")


@pytest.mark.parametrize("name, data, encoding", [
    ("utf16.csv", "text\nein großartiger Film\nawful\n".encode("utf-16"), "utf-16"),
    ("latin.jsonl", '{"text": "très bien"}\n{"text": "great"}\n'.encode("latin-1"), "latin-1"),
    ("png.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe\x00", None),
])
def test_files_that_are_not_utf8(bundle, tmp_path: Path, name: str, data: bytes, encoding: str | None):
    src = tmp_path / name
    src.write_bytes(data)
    assert_refused_without_output(lambda: score_file(src, bundle=bundle), tmp_path, EncodingError,
                                  "is not valid utf-8 text.*--encoding")
    if encoding:
        check_scored(score_file(src, bundle=bundle, encoding=encoding), 2)


# --------------------------------------------------------------------------- texts unlike the training texts


def test_texts_all_out_of_vocabulary_are_scored(bundle, tmp_path: Path):
    texts = ["Qxzv plorbt wemmick zzyzx", "这部电影非常好看", "هذا الفيلم رائع جدا", "🙂🙂🙂 👩‍👩‍👧", "12345 67890",
             "\u202eevil right-to-left\u202c", "Ünïcödé ẞtraße", "zxq " * 300]
    ids = bundle.encode([bundle.normalize([t])[0] for t in texts])
    words = int(bundle.encoder.size)  # ids from here on are the ngram arch's hashed word pairs
    assert all({i for i in seq.tolist() if i < words} <= {1, 2} for seq in ids)  # word ids: START and UNK only
    src = tmp_path / "oov.csv"
    pd.DataFrame({"id": range(len(texts)), "text": texts}).to_csv(src, index=False)
    rows = check_scored(score_file(src, bundle=bundle), len(texts))
    assert all(r["score_status"] == "ok" for r in rows)
    assert [r["text"] for r in rows] == texts  # the input's values come back unchanged
    # same number of unknown words: the same word ids; the ngram bundle still tells the two apart by
    # their hashed word pair (one more id each), so unknown words are not all one token to it
    a, b = bundle.encode(["qqq www", "zzz yyy"])
    assert a[:3].tolist() == b[:3].tolist() == [1, 2, 2]
    assert len(a) == len(b) == 4 and a[3] != b[3] and min(a[3], b[3]) >= words


def test_a_text_of_a_million_words(bundle, tmp_path: Path):
    rng = np.random.default_rng(0)
    words = rng.choice(["great", "awful", "film", "the", "plot", "boring", "wonderful", "zzz"], size=1_000_000)
    big = " ".join(words)
    src = tmp_path / "big.csv"
    pd.DataFrame({"id": [1, 2, 3], "text": ["a great film", big, "awful"]}).to_csv(src, index=False)
    rows = check_scored(score_file(src, bundle=bundle), 3)
    assert [r["score_status"] for r in rows] == ["ok", "ok", "ok"] and len(rows[1]["text"]) == len(big)
    # only the last max_len ids are read ("pre" truncation): the tail alone gives the same prediction
    assert bundle.settings.truncating == "pre"
    tail = " ".join(words[-bundle.settings.max_len:])
    assert float(rows[1]["p_pos"]) == pytest.approx(bundle.predict([tail]).probabilities[0, 1], abs=1e-6)


def test_bare_carriage_returns_and_newlines_in_cells_survive_csv_output(bundle, tmp_path: Path):
    texts = ["line one\rline two", "a\nb", "c\r\nd", "\r", "great\rfilm", 'quote " and ; and ,']
    src = tmp_path / "cr.jsonl"
    src.write_text("".join(json.dumps({"text": t, "n": i}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
    for ext in ("csv", "tsv"):
        rows = check_scored(score_file(src, bundle=bundle, output=tmp_path / f"out.{ext}"), len(texts))
        assert [r["text"] for r in rows] == texts and [r["n"] for r in rows] == [str(i) for i in range(len(texts))]


# --------------------------------------------------------------------------- generated input


CSV_BODY = st.one_of(
    st.binary(max_size=1500),  # mostly not UTF-8
    st.lists(st.one_of(TEXTS, st.sampled_from(['"', '""', ",", "\n", "\r", "\r\n", "1,", ',"a,b"'])),
             max_size=30).map(lambda parts: "".join(parts).encode("utf-8", "ignore")),  # quoting chaos, ragged rows
)


@SETTINGS
@given(data=CSV_BODY, out=st.sampled_from(["csv", "jsonl", "parquet"]))
def test_random_bytes_are_scored_row_for_row_or_refused(bundle, tmp_path_factory, data: bytes, out: str):
    tmp = tmp_path_factory.mktemp("bytes")
    src = tmp / "random.csv"
    src.write_bytes(b"id,text\n" + data)
    try:
        result = score_file(src, bundle=bundle, output=tmp / f"out.{out}")
    except OwntrainError as exc:
        event(f"refused: {type(exc).__name__}")
        assert str(exc)
        assert not (tmp / f"out.{out}").exists()
        return
    event("scored")
    check_scored(result, csv_records(src.read_bytes()))


JSON_LINE = st.one_of(
    st.tuples(TEXTS, st.integers()).map(lambda t: json.dumps({"text": t[0], "id": t[1]})),
    TEXTS.map(lambda t: json.dumps({"text": t}, ensure_ascii=False).replace("\n", "\\n").replace("\r", "\\r")),
    st.just('{"text": "lone \\ud800 surrogate", "id": "\\udfff"}'),
    st.just('{"text": 3.5}'), st.just('{"text": null}'), st.just('{"id": 9}'), st.just('{"text": [1, {"a": "b"}]}'),
    st.just("[1, 2, 3]"), st.just("{not json"), st.just('"just a string"'),
)


def _loads_or_none(line: str):
    try:
        return json.loads(line)
    except ValueError:
        return None


@SETTINGS
@given(lines=st.lists(JSON_LINE, min_size=1, max_size=25), out=st.sampled_from(["csv", "jsonl", "parquet"]))
def test_random_json_lines_are_scored_row_for_row(bundle, tmp_path_factory, lines: list[str], out: str):
    tmp = tmp_path_factory.mktemp("jsonl")
    src = tmp / "random.jsonl"
    src.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + b"\n")
    try:
        result = score_file(src, bundle=bundle, output=tmp / f"out.{out}")
    except EncodingError as exc:  # a raw surrogate written with surrogatepass is not UTF-8
        assert "is not valid utf-8" in str(exc) and not (tmp / f"out.{out}").exists()
        return
    except OwntrainError as exc:  # no JSON object among them
        assert "holds no JSON objects" in str(exc) or "text column" in str(exc)
        return
    rows = check_scored(result, sum(1 for line in lines if line.strip()))
    if out == "jsonl":  # values come back exactly, lone surrogates included
        objects = [_loads_or_none(line) for line in lines if line.strip()]
        for obj, row in zip(objects, rows):
            if isinstance(obj, dict) and row["score_status"] != "malformed_row":
                assert row.get("text") == obj.get("text")


@SETTINGS
@given(texts=st.lists(st.one_of(TEXTS, st.none()), max_size=30))
def test_predict_on_random_unicode_never_fails(bundle, texts: list[str | None]):
    p = bundle.predict(texts)
    assert len(p) == len(texts) and p.probabilities.shape == (len(texts), 2)
    for i, status in enumerate(p.status):
        if status == "ok":
            assert p.labels[i] in ("neg", "pos") and abs(p.probabilities[i].sum() - 1) < 1e-5
        else:
            assert status == "empty_text" and p.labels[i] is None and np.isnan(p.probabilities[i]).all()
