"""Hostile input for ingest: random bytes and Unicode, quoting chaos, huge cells, odd newlines.

Whatever the input, ingest either succeeds with rows in = rows kept + rows rejected, or stops with
an OwntrainError (a clear message, no traceback). Nothing else is acceptable.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from owntrain.data import ingest
from owntrain.errors import OwntrainError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
LABELS = st.sampled_from(["pos", "neg", "neutral", " pos", "1", "1.0", "", "Pos"])
ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=60)
NASTY = st.sampled_from(["\u0301", "\u200f", "\u202e", "🙂", "👩‍👩‍👧", "\x00", "\r", "\n", "\r\n", '"', "'",
                         ";", ",", "\t", "<br />", "&amp;", "\ufeff", "ß", "Ä", "\u2028"])
TEXTS = st.lists(st.one_of(ANY_TEXT, NASTY), min_size=1, max_size=6).map("".join)


def check_accounting(workspace: Path, result) -> None:
    r = result.report["rows"]
    assert r["read"] == r["kept"] + r["rejected"]
    kept = pd.read_parquet(workspace / "dataset.parquet")
    rejected = pd.read_csv(workspace / "rejects.csv", dtype=str, keep_default_na=False)
    assert len(kept) == r["kept"] and len(rejected) == r["rejected"]


def run_ingest(path: Path, workspace: Path, **kwargs) -> None:
    try:
        result = ingest(path, workspace=workspace, **kwargs)
    except OwntrainError as exc:
        assert str(exc), "an error must say what happened"
        return
    check_accounting(workspace, result)


@SETTINGS
@given(data=st.binary(max_size=2000))
def test_random_bytes_never_crash(tmp_path, data):
    path = tmp_path / "random.csv"
    path.write_bytes(b"text,label\n" + data)
    run_ingest(path, tmp_path / "ws")


@SETTINGS
@given(rows=st.lists(st.tuples(TEXTS, LABELS), min_size=1, max_size=40),
       delimiter=st.sampled_from([",", ";", "\t"]), newline=st.sampled_from(["\n", "\r\n", "\r"]),
       bom=st.booleans())
def test_random_unicode_through_csv(tmp_path, rows, delimiter, newline, bom):
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, delimiter=delimiter, lineterminator=newline)
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    path = tmp_path / "u.csv"
    path.write_bytes(("\ufeff" if bom else "").encode() + buf.getvalue().encode("utf-8", "surrogatepass"))
    run_ingest(path, tmp_path / "ws", min_examples_per_label=1)


@SETTINGS
@given(lines=st.lists(st.one_of(
    st.tuples(TEXTS, LABELS).map(lambda t: json.dumps({"text": t[0], "label": t[1]})),
    st.just('{"text": "lone \\ud800 surrogate", "label": "pos"}'),
    st.just('{"text": "other \\udfff", "label": "neg"}'),
    st.just("[1, 2, 3]"), st.just("{not json"), st.just(""), st.just('{"label": "pos"}'),
), min_size=1, max_size=30))
def test_random_json_lines(tmp_path, lines):
    path = tmp_path / "u.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run_ingest(path, tmp_path / "ws", min_examples_per_label=1)


@SETTINGS
@given(lines=st.lists(st.lists(st.sampled_from(['"', '""', ",", "a", "b c", "\n", "pos", "neg", "'"]),
                               max_size=8).map("".join), min_size=1, max_size=30))
def test_quoting_chaos_and_ragged_rows(tmp_path, lines):
    path = tmp_path / "q.csv"
    path.write_text("text,label\n" + "\n".join(lines), encoding="utf-8")
    run_ingest(path, tmp_path / "ws", min_examples_per_label=1)


def test_a_ten_megabyte_cell(tmp_path):
    big = ("sehr langer Text " * 600_000)[:10_000_000]
    rows = [(big, "pos")] + [(f"kurz {i}", "pos" if i % 2 else "neg") for i in range(20)]
    path = tmp_path / "big.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([("text", "label"), *rows])
    result = ingest(path, workspace=tmp_path / "ws")
    assert result.rows_kept == 21
    df = pd.read_parquet(result.dataset)
    assert df.text.str.len().max() > 9_000_000


def test_semicolon_excel_export_in_cp1252(tmp_path):
    path = tmp_path / "excel.csv"
    lines = ["Bewertung;Sterne"] + [f"Schöne Grüße, Nr. {i};{1 + i % 5}" for i in range(30)]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    result = ingest(path, workspace=tmp_path / "ws", encoding="cp1252", text_col="Bewertung")
    assert result.rows_kept == 30
    assert pd.read_parquet(result.dataset).text.str.contains("Grüße").all()


def test_mixed_newlines_and_nul_bytes(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b"text,label\r\ngut\x00 ja,pos\nschlecht,neg\rmittel,pos\r\n" +
                     b"".join(f"t{i},{'pos' if i % 2 else 'neg'}\n".encode() for i in range(10)))
    result = ingest(path, workspace=tmp_path / "ws")
    df = pd.read_parquet(result.dataset)
    assert result.rows_read == result.rows_kept + result.rows_rejected == 13
    assert "gut ja" in set(df.text)


def _labelled(tmp_path: Path, pairs: list[tuple[str, object]], name: str = "l.csv") -> Path:
    path = tmp_path / name
    pd.DataFrame(pairs, columns=["text", "label"]).to_csv(path, index=False)
    return path


def test_labels_that_differ_only_in_case_or_whitespace(tmp_path):
    pairs = [(f"text {i}", ["pos", "Pos", " pos ", "neg"][i % 4]) for i in range(80)]
    result = ingest(_labelled(tmp_path, pairs), workspace=tmp_path / "ws")
    assert result.report["labels"] == ["neg", "Pos", "pos"]  # whitespace stripped, case kept
    assert any("differ only in case" in w for w in result.report["warnings"])


def test_numeric_looking_labels_are_one_class(tmp_path):
    src = tmp_path / "n.parquet"
    pd.DataFrame({"text": [f"t {i}" for i in range(30)],
                  "label": [[1.0, 0.0][i % 2] for i in range(30)]}).to_parquet(src)
    csv_src = _labelled(tmp_path, [(f"t {i}", ["1", "1.0", " 1", "0"][i % 4]) for i in range(40)])
    assert ingest(src, workspace=tmp_path / "a").report["labels"] == ["0", "1"]
    assert ingest(csv_src, workspace=tmp_path / "b").report["label_counts"] == {"0": 10, "1": 30}


def test_a_thousand_distinct_labels_warn(tmp_path):
    pairs = [(f"text {i}", f"class {i % 1000}") for i in range(3000)]
    result = ingest(_labelled(tmp_path, pairs), workspace=tmp_path / "ws")
    assert len(result.report["labels"]) == 1000
    assert any("1000 distinct labels" in w for w in result.report["warnings"])


def test_a_class_with_one_example_is_rejected_with_its_reason(tmp_path):
    pairs = [(f"text {i}", "pos" if i % 2 else "neg") for i in range(40)] + [("allein", "rare")]
    result = ingest(_labelled(tmp_path, pairs), workspace=tmp_path / "ws")
    assert result.report["rejected_by_reason"] == {"rare_label": 1}
    assert "rare" not in result.report["labels"]
