"""Ingest: formats, column detection, every rejection reason, row accounting, splits."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from owntrain.data import ingest
from owntrain.errors import ColumnNotFoundError, EncodingError, InputError, ValidationError

POS = ["Tolles Team und faire Bezahlung", "Super Chef, viel Homeoffice", "Gute Weiterbildung, nette Kollegen",
       "Flexible Arbeitszeiten und Respekt", "Sicherer Arbeitsplatz, gutes Klima", "Kantine lecker, Stimmung super",
       "Viel Lob und echte Wertschätzung", "Moderne Technik, kurze Wege", "Faire Schichtplanung",
       "Überstunden werden bezahlt"]
NEG = ["Chaotische Führung und Druck", "Schlechte Bezahlung, keine Perspektive", "Mobbing im Team",
       "Überstunden ohne Ausgleich", "Chef schreit herum", "Kein Homeoffice, alte Technik",
       "Befristung nach Befristung", "Keine Wertschätzung", "Schichtplan ständig geändert",
       "Unfaire Verteilung der Arbeit"]


def rows(n_per_label: int = 10) -> list[tuple[str, str]]:
    out = []
    for i in range(n_per_label):
        out.append((POS[i % len(POS)] + f" {i}", "positive"))
        out.append((NEG[i % len(NEG)] + f" {i}", "negative"))
    return out


def write_csv(path: Path, header: list[str], data: list[tuple], delimiter: str = ",", encoding: str = "utf-8") -> Path:
    with open(path, "w", encoding=encoding, newline="") as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow(header)
        w.writerows(data)
    return path


def rejects(result) -> pd.DataFrame:
    return pd.read_csv(result.rejects, dtype=str, keep_default_na=False)


def dataset(result) -> pd.DataFrame:
    return pd.read_parquet(result.dataset)


def assert_accounting(result) -> None:
    r = result.report["rows"]
    assert r["read"] == r["kept"] + r["rejected"]
    assert len(dataset(result)) == r["kept"]
    assert len(rejects(result)) == r["rejected"]
    assert sum(result.report["rejected_by_reason"].values()) == r["rejected"]


# ---------------------------------------------------------------- formats


def test_csv_with_detected_columns(tmp_path):
    src = write_csv(tmp_path / "reviews.csv", ["Review", "Sentiment"], rows())
    result = ingest(src, workspace=tmp_path / "ws")
    assert result.rows_read == 20 and result.rows_kept == 20 and result.rows_rejected == 0
    df = dataset(result)
    assert list(df.columns) == ["text", "text_original", "label", "split", "source_file", "source_line"]
    assert result.report["labels"] == ["negative", "positive"]
    assert result.report["inputs"][0]["text_columns"] == ["Review"]
    assert result.report["inputs"][0]["label_column"] == "Sentiment"
    # line numbers are physical lines: the header is line 1
    assert sorted(df.source_line) == list(range(2, 22))
    assert_accounting(result)


@pytest.mark.parametrize("fmt", ["tsv", "semicolon", "parquet", "jsonl", "csv.gz"])
def test_every_table_format_gives_the_same_dataset(tmp_path, fmt):
    data = rows()
    reference = ingest(write_csv(tmp_path / "ref.csv", ["text", "label"], data), workspace=tmp_path / "ref")
    if fmt == "tsv":
        src = write_csv(tmp_path / "in.tsv", ["text", "label"], data, delimiter="\t")
    elif fmt == "semicolon":  # German Excel
        src = write_csv(tmp_path / "in.csv", ["text", "label"], data, delimiter=";", encoding="utf-8-sig")
    elif fmt == "parquet":
        src = tmp_path / "in.parquet"
        pd.DataFrame(data, columns=["text", "label"]).to_parquet(src)
    elif fmt == "jsonl":
        src = tmp_path / "in.jsonl"
        src.write_text("".join(json.dumps({"text": t, "label": l}, ensure_ascii=False) + "\n" for t, l in data),
                       encoding="utf-8")
    else:
        src = tmp_path / "in.csv.gz"
        with gzip.open(src, "wt", encoding="utf-8", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["text", "label"])
            w.writerows(data)
    result = ingest(src, workspace=tmp_path / "ws")
    a = dataset(reference)[["text", "label", "split"]]
    b = dataset(result)[["text", "label", "split"]]
    pd.testing.assert_frame_equal(a, b)


def test_folder_of_txt_per_label_in_aclimdb_layout(tmp_path):
    root = tmp_path / "aclImdb"
    for split, count in (("train", 8), ("test", 4)):
        for label in ("pos", "neg"):
            (root / split / label).mkdir(parents=True)
            for i in range(count):
                (root / split / label / f"{i}_7.txt").write_text(f"{label} review {split} {i}<br />end",
                                                                 encoding="utf-8")
    (root / "train" / "unsup").mkdir()
    (root / "train" / "unsup" / "0_0.txt").write_text("unlabelled", encoding="utf-8")
    result = ingest(root, workspace=tmp_path / "ws")
    df = dataset(result)
    assert result.rows_read == 24 and result.rows_kept == 24
    assert set(df.label) == {"neg", "pos"}
    assert (df[df.source_file.str.contains("/test/")].split == "test").all()
    assert set(df[df.source_file.str.contains("/train/")].split) == {"train", "validation"}
    assert "<br" not in " ".join(df.text) and df.text.str.endswith(" end").all()
    assert result.report["inputs"][0]["skipped_unlabelled_folders"]


def test_several_files_take_their_role_from_the_name(tmp_path):
    train = write_csv(tmp_path / "train.csv", ["text", "label"], rows(20))
    test = write_csv(tmp_path / "test.csv", ["text", "label"], [(t + " test", l) for t, l in rows(5)])
    result = ingest([train, test], workspace=tmp_path / "ws")
    df = dataset(result)
    assert (df[df.source_file.str.endswith("test.csv")].split == "test").all()
    from_train = df[df.source_file.str.endswith("train.csv")]
    assert set(from_train.split) == {"train", "validation"}  # validation carved out of train
    assert result.report["split_source"] == "files"


def test_roles_option_and_unknown_role(tmp_path):
    a = write_csv(tmp_path / "a.csv", ["text", "label"], rows(10))
    b = write_csv(tmp_path / "b.csv", ["text", "label"], [(t + " b", l) for t, l in rows(5)])
    pooled = ingest([a, b], workspace=tmp_path / "ws")  # no file names a role: pooled, then split
    assert pooled.report["split_source"] == "hash" and pooled.rows_kept == 30
    test = write_csv(tmp_path / "test.csv", ["text", "label"], [(t + " t", l) for t, l in rows(5)])
    with pytest.raises(InputError, match="Cannot tell the split role of a.csv.*--roles"):
        ingest([a, test], workspace=tmp_path / "ws")
    result = ingest([a, b], workspace=tmp_path / "ws", roles=["train", "test"])
    assert (dataset(result).query("source_file.str.endswith('b.csv')").split == "test").all()
    with pytest.raises(InputError, match="names no split"):
        ingest([a, b], workspace=tmp_path / "ws", roles=["train", "holdout"])


# ---------------------------------------------------------------- columns


def test_missing_text_column_lists_columns_and_option(tmp_path):
    src = write_csv(tmp_path / "r.csv", ["titel", "stars"], [("gut", 5)] * 5)
    with pytest.raises(ColumnNotFoundError) as exc:
        ingest(src, workspace=tmp_path / "ws")
    message = str(exc.value)
    assert "r.csv" in message and "titel, stars" in message and "--text-col" in message


def test_named_label_column_not_found(tmp_path):
    src = write_csv(tmp_path / "r.csv", ["text", "stars"], [("gut", 5)] * 5)
    with pytest.raises(ColumnNotFoundError, match="Column 'label' not found .* Columns: text, stars"):
        ingest(src, workspace=tmp_path / "ws", label_col="label")


def test_several_text_columns_are_joined(tmp_path):
    data = [(f"Titel {i}", f"Pro {i}", "" if i % 2 else f"Contra {i}", "positive" if i % 2 else "negative")
            for i in range(12)]
    src = write_csv(tmp_path / "r.csv", ["title", "pros", "cons", "label"], data)
    result = ingest(src, workspace=tmp_path / "ws", text_col=["title", "pros,cons"])
    df = dataset(result).set_index("source_line")
    assert df.loc[2, "text"] == "Titel 0 Pro 0 Contra 0"
    assert df.loc[3, "text"] == "Titel 1 Pro 1"
    assert df.loc[2, "text_original"] == "Titel 0\nPro 0\nContra 0"


# ---------------------------------------------------------------- encoding


def test_latin1_file_gives_clear_error_then_ingests_with_encoding(tmp_path):
    data = [(f"Schöne Grüße aus der Filiale {i}", "positive" if i % 2 else "negative") for i in range(10)]
    src = write_csv(tmp_path / "latin.csv", ["text", "label"], data, encoding="latin-1")
    with pytest.raises(EncodingError) as exc:
        ingest(src, workspace=tmp_path / "ws")
    assert "latin.csv" in str(exc.value) and "line 2" in str(exc.value) and "--encoding" in str(exc.value)
    result = ingest(src, workspace=tmp_path / "ws", encoding="latin-1")
    assert result.rows_kept == 10 and "Grüße" in dataset(result).text.iloc[0]


def test_bom_is_stripped_from_the_header(tmp_path):
    src = write_csv(tmp_path / "bom.csv", ["text", "label"], rows(), encoding="utf-8-sig")
    result = ingest(src, workspace=tmp_path / "ws")
    assert result.report["inputs"][0]["text_columns"] == ["text"]


# ---------------------------------------------------------------- rejection reasons


def test_every_rejection_reason_is_written_with_file_line_and_reason(tmp_path):
    src = tmp_path / "messy.csv"
    good = [(t, l, "train") for t, l in rows(10)] + [(t + " v", l, "validation") for t, l in rows(2)]
    good += [(t + " t", l, "test") for t, l in rows(2)]
    lines = ["text,label,split"] + [f'"{t}",{l},{s}' for t, l, s in good]
    lines += [
        "zu,viele,felder,hier",           # malformed_row (line 30)
        ",positive,train",                # empty_text
        "<br /><br />,negative,train",    # empty_text after normalisation
        "kein Label,,train",              # missing_label
        "falscher Split,positive,holdout",  # bad_split
        "nur im Test,mixed,test",          # label_not_in_train
    ]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = ingest(src, workspace=tmp_path / "ws")
    rej = rejects(result)
    by_reason = rej.groupby("reason").line.apply(list).to_dict()
    assert by_reason["malformed_row"] == ["30"]
    assert by_reason["empty_text"] == ["31", "32"]
    assert by_reason["missing_label"] == ["33"]
    assert by_reason["bad_split"] == ["34"]
    assert by_reason["label_not_in_train"] == ["35"]
    assert (rej.source_file == str(src)).all()
    assert "holdout" in rej[rej.reason == "bad_split"].detail.iloc[0]
    assert_accounting(result)


def test_rare_label_unmapped_label_duplicates_and_conflicts(tmp_path):
    data = [(f"{t} [{s}]", s) for s in ("1", "2", "4", "5") for t, _ in rows(3)[:5]]
    data += [("einmal drei", "3"), ("zweimal drei", "3")]  # unmapped by the label map
    data += [(data[0][0], data[0][1]), (data[0][0], data[0][1])]  # duplicate twice
    data += [("Konflikt", "1"), ("Konflikt", "5")]
    src = write_csv(tmp_path / "stars.csv", ["text", "stars"], data)
    kept = ingest(src, workspace=tmp_path / "ws", label_map="1-2=negative,4-5=positive")
    assert kept.report["unmapped_label_values"] == {"3": 2}
    assert kept.report["duplicates"]["duplicate_rows"] == 2
    assert kept.report["duplicates"]["conflicting_texts"] == 1
    assert kept.report["rejected_by_reason"] == {"unmapped_label": 2}
    dropped = ingest(src, workspace=tmp_path / "ws2", label_map="1-2=negative,4-5=positive",
                     drop_duplicates=True, drop_conflicts=True)
    rej = rejects(dropped)
    assert dropped.report["rejected_by_reason"] == {"unmapped_label": 2, "duplicate": 2, "conflicting_labels": 2}
    assert rej[rej.reason == "duplicate"].detail.str.contains(f"{src}:2").all()
    assert_accounting(dropped)
    rare = ingest(write_csv(tmp_path / "rare.csv", ["text", "label"], rows(5) + [("ein Einzelfall", "neutral")]),
                  workspace=tmp_path / "ws3")
    assert rare.report["rejected_by_reason"] == {"rare_label": 1}
    assert "neutral" in rejects(rare).detail.iloc[0]


def test_nothing_usable_is_a_clear_error(tmp_path):
    src = write_csv(tmp_path / "one.csv", ["text", "label"], [(f"text {i}", "positive") for i in range(10)])
    with pytest.raises(ValidationError, match="Only one label"):
        ingest(src, workspace=tmp_path / "ws")
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(InputError, match="empty"):
        ingest(empty, workspace=tmp_path / "ws")
    with pytest.raises(InputError, match="no such file"):
        ingest(tmp_path / "missing.csv", workspace=tmp_path / "ws")


def test_normalisation_keeps_the_original(tmp_path):
    data = [("Cafe\u0301   im<br />Büro\t\tgut", "positive"), ("A &amp; B schlecht", "negative")] + rows(3)
    result = ingest(write_csv(tmp_path / "n.csv", ["text", "label"], data), workspace=tmp_path / "ws")
    df = dataset(result).set_index("source_line")
    assert df.loc[2, "text"] == "Café im Büro gut"
    assert df.loc[2, "text_original"] == "Cafe\u0301   im<br />Büro\t\tgut"
    assert df.loc[3, "text"] == "A & B schlecht"


# ---------------------------------------------------------------- split


def test_split_is_stratified_deterministic_and_order_independent(tmp_path):
    data = [(f"Text Nummer {i} " + ("gut" if i % 3 else "schlecht"), "pos" if i % 3 else "neg") for i in range(300)]
    a = dataset(ingest(write_csv(tmp_path / "a.csv", ["text", "label"], data), workspace=tmp_path / "a"))
    b = dataset(ingest(write_csv(tmp_path / "b.csv", ["text", "label"], data[::-1]), workspace=tmp_path / "b"))
    assert a.set_index("text").split.sort_index().equals(b.set_index("text").split.sort_index())
    counts = a.groupby(["label", "split"]).size().unstack()
    assert counts.loc["neg"].to_dict() == {"test": 10, "train": 80, "validation": 10}
    assert counts.loc["pos"].to_dict() == {"test": 20, "train": 160, "validation": 20}
    other_seed = dataset(ingest(write_csv(tmp_path / "c.csv", ["text", "label"], data), workspace=tmp_path / "c",
                                seed=7))
    assert not other_seed.set_index("text").split.sort_index().equals(a.set_index("text").split.sort_index())


def test_duplicates_never_straddle_splits(tmp_path):
    data = [(f"Text {i % 40}", "pos" if (i % 40) % 2 else "neg") for i in range(200)]
    df = dataset(ingest(write_csv(tmp_path / "d.csv", ["text", "label"], data), workspace=tmp_path / "ws"))
    assert len(df) == 200
    assert (df.groupby("text").split.nunique() == 1).all()


def test_split_column_is_used(tmp_path):
    data = [(t, l, "test" if i < 4 else "train") for i, (t, l) in enumerate(rows(10))]
    result = ingest(write_csv(tmp_path / "s.csv", ["text", "label", "split"], data), workspace=tmp_path / "ws")
    df = dataset(result)
    assert (df.set_index("source_line").loc[[2, 3, 4, 5], "split"] == "test").all()
    assert result.report["split_source"] == "column"
