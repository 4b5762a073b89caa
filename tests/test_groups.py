"""Ingest --group-col: whole groups per split, duplicates linking groups, missing groups, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from owntrain import split as splitting
from owntrain.cli import app
from owntrain.data import ingest
from owntrain.errors import ColumnNotFoundError, InputError

from test_ingest import dataset, write_csv


def grouped_rows(n_groups: int = 60, per_group: int = 5) -> list[tuple[str, str, str]]:
    """Rows of n_groups products, each reviewed per_group times with one label per product."""
    out = []
    for g in range(n_groups):
        label = "pos" if g % 3 else "neg"
        for k in range(per_group):
            out.append((f"Produkt {g} Bewertung {k} " + ("gut" if label == "pos" else "schlecht"), label, f"P{g}"))
    return out


def test_no_group_straddles_splits_and_the_split_stays_stratified(tmp_path):
    data = grouped_rows()
    result = ingest(write_csv(tmp_path / "g.csv", ["text", "label", "product"], data), workspace=tmp_path / "ws",
                    group_col="product")
    df = dataset(result)
    df["product"] = [data[line - 2][2] for line in df.source_line]
    assert (df.groupby("product").split.nunique() == 1).all()
    counts = df.groupby(["label", "split"]).size().unstack()
    # 20 neg products of 5 rows (100 rows), 40 pos (200 rows): 80/10/10 of each label, in whole products
    assert counts.loc["neg"].to_dict() == {"test": 10, "train": 80, "validation": 10}
    assert counts.loc["pos"].to_dict() == {"test": 20, "train": 160, "validation": 20}
    assert result.report["groups"] == {"column": "product", "groups": 60, "rows_without_group": 0,
                                       "groups_across_splits": 0}


def test_without_groups_the_same_rows_straddle(tmp_path):
    """The control of the test above: a text split puts some product's reviews in two splits."""
    data = grouped_rows()
    df = dataset(ingest(write_csv(tmp_path / "g.csv", ["text", "label", "product"], data), workspace=tmp_path / "ws"))
    df["product"] = [data[line - 2][2] for line in df.source_line]
    assert (df.groupby("product").split.nunique() > 1).sum() > 10


def test_group_split_is_deterministic_order_independent_and_seeded(tmp_path):
    data = grouped_rows()
    header = ["text", "label", "product"]

    def split_of(name, rows, seed=0):
        df = dataset(ingest(write_csv(tmp_path / f"{name}.csv", header, rows), workspace=tmp_path / name,
                            group_col="product", seed=seed))
        return df.set_index("text").split.sort_index()

    a = split_of("a", data)
    assert a.equals(split_of("b", data[::-1]))
    assert not a.equals(split_of("c", data, seed=7))


def test_a_shared_text_joins_its_groups(tmp_path):
    data = grouped_rows()
    # the same review text under many products: all of them must land in one split with it
    data += [("Genau dieselbe Bewertung für alles", "pos", f"P{g}") for g in range(1, 60, 3)]
    df = dataset(ingest(write_csv(tmp_path / "g.csv", ["text", "label", "product"], data), workspace=tmp_path / "ws",
                        group_col="product"))
    df["product"] = [data[line - 2][2] for line in df.source_line]
    linked = df[df["product"].isin([f"P{g}" for g in range(1, 60, 3)])]
    assert linked.split.nunique() == 1
    assert (df.groupby("product").split.nunique() == 1).all()


def test_rows_without_a_group_are_split_alone_and_reported(tmp_path):
    data = grouped_rows(30)
    data += [(f"Ohne Produkt {i} gut", "pos", "") for i in range(40)]
    result = ingest(write_csv(tmp_path / "g.csv", ["text", "label", "product"], data), workspace=tmp_path / "ws",
                    group_col="product")
    df = dataset(result)
    assert len(df) == len(data)  # nothing dropped
    loose = df[df.text.str.startswith("ohne produkt") | df.text.str.startswith("Ohne Produkt")]
    assert len(loose) == 40 and loose.split.nunique() > 1  # split one by one, like a split without groups
    assert result.report["groups"]["rows_without_group"] == 40
    assert any("40 row(s) have no value in group column 'product'" in w for w in result.report["warnings"])


def test_group_column_errors_name_the_file_and_option(tmp_path):
    src = write_csv(tmp_path / "g.csv", ["text", "label", "product"], grouped_rows(6))
    with pytest.raises(ColumnNotFoundError, match=r"g\.csv.*--group-col"):
        ingest(src, workspace=tmp_path / "ws", group_col="kunde")
    with pytest.raises(InputError, match="both the group and the label"):
        ingest(src, workspace=tmp_path / "ws", group_col="label")


def test_groups_across_given_splits_are_reported(tmp_path):
    data = grouped_rows(12)
    train = write_csv(tmp_path / "train.csv", ["text", "label", "product"], data[:40])
    test = write_csv(tmp_path / "test.csv", ["text", "label", "product"],
                     [(t + " bis", lab, g) for t, lab, g in data[35:60]])
    result = ingest([train, test], workspace=tmp_path / "ws", group_col="product")
    assert result.report["groups"]["groups_across_splits"] == 1  # P7: rows 35-39 in train, 35-39 'bis' in test
    assert any("have rows in more than one split" in w for w in result.report["warnings"])
    df = dataset(result)
    assert set(df.split) == {"train", "validation", "test"}


def test_cli_group_col_shows_the_groups(tmp_path):
    src = write_csv(tmp_path / "g.csv", ["text", "label", "product"], grouped_rows())
    out = CliRunner().invoke(app, ["ingest", str(src), "--group-col", "product", "--workspace", str(tmp_path / "ws")])
    assert out.exit_code == 0, out.output
    assert "whole groups of 'product': 60 group(s)" in out.output


def test_connected_components_follow_chains():
    # rows linked a-b by text, b-c by group, c-d by text...: one chain, one component; row 5 alone
    a = np.array([1, 1, 2, 2, 3, 9], dtype=np.uint64)
    b = np.array([10, 11, 11, 12, 12, 13], dtype=np.uint64)
    assert splitting.connected(a, b).tolist() == [0, 0, 0, 0, 0, 5]
    long_chain = np.arange(10_000, dtype=np.uint64)
    comp = splitting.connected(long_chain // 2, (long_chain + 1) // 2 + 100_000)
    assert (comp == 0).all()


def test_unit_cut_places_units_by_their_middle_row():
    assert splitting._unit_cut(np.array([5] * 20), (0.8, 0.1, 0.1)) == (16, 2)  # exact: 80 / 10 / 10 rows
    # three units of 5 rows: the rows say 11 / 2 / 2; each split with a share still gets one unit
    assert splitting._unit_cut(np.array([5, 5, 5]), (0.8, 0.1, 0.1)) == (1, 1)
    assert splitting._unit_cut(np.array([5, 5, 5]), (0.9, 0.1, 0.0)) == (2, 1)
    # one unit larger than the training share still trains; nothing is taken from it for validation
    assert splitting._unit_cut(np.array([100, 1, 1]), (0.8, 0.1, 0.1)) == (1, 0)
    assert splitting._unit_cut(np.array([7]), (0.8, 0.1, 0.1)) == (1, 0)
