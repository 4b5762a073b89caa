"""`owntrain vocab`: listing, encode, decode, bundle or workspace, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from owntrain.cli import app
from owntrain.encoding import EncodingSettings
from owntrain.text import TextSettings
from owntrain.vocab import Vocabulary

TEXTS = [
    "The film was great, the acting was great.",
    "The film was awful. The plot was awful!",
    "A great story and a great cast, the end.",
    "Awful film, awful story. Schmidt directed it.",
]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    rows = len(TEXTS) + 1
    pd.DataFrame({
        "text": TEXTS + ["held-out test words only"],
        "text_original": TEXTS + ["held-out test words only"],
        "label": ["pos", "neg", "pos", "neg", "pos"],
        "split": ["train"] * len(TEXTS) + ["test"],
        "source_file": "tiny.csv",
        "source_line": np.arange(2, rows + 2, dtype="int64"),
    }).to_parquet(root / "dataset.parquet", index=False)
    return root


def run(*args: str):
    return CliRunner().invoke(app, ["vocab", *args])


def test_lists_top_tokens_from_training_split(workspace):
    result = run("-w", str(workspace), "--limit", "3")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"Vocabulary from training split of {workspace / 'dataset.parquet'} (4 texts)")
    assert "top_words 5,000, min_df 2; lang en" in lines[0]
    assert lines[1].split() == ["id", "count", "token"]
    assert [line.split() for line in lines[2:]] == [["4", "5", "the"], ["5", "4", "awful"], ["6", "4", "great"]]
    assert "schmidt" not in result.output and "held-out" not in result.output


def test_options_change_the_vocabulary(workspace):
    result = run("-w", str(workspace), "--min-df", "1", "--top-words", "6", "--limit", "50")
    assert result.exit_code == 0, result.output
    assert "2 tokens, 6 ids (top_words 6, min_df 1" in result.output
    assert len(result.output.splitlines()) == 4


def test_encode_and_decode(workspace):
    result = run("-w", str(workspace), "--encode", "The film was unseen!")
    assert result.exit_code == 0, result.output
    assert "ids:     1 4 8 7 2" in result.output
    assert "decoded: <START> the film was <UNK>" in result.output
    result = run("-w", str(workspace), "--decode", "0 0 1 4 2 3")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == "decoded: <PAD> <PAD> <START> the <UNK> <RESERVED>"


def test_bad_ids_are_a_user_error(workspace):
    result = run("-w", str(workspace), "--decode", "1 four")
    assert result.exit_code == 2
    assert "Error: Cannot read '1 four' as ids" in result.output
    result = run("-w", str(workspace), "--decode", "1 99999")
    assert result.exit_code == 2
    assert "outside this encoder's ids" in result.output
    assert "Traceback" not in result.output


def test_missing_workspace_says_run_ingest(tmp_path):
    result = run("-w", str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert "owntrain ingest" in result.output


def test_unknown_language_is_a_user_error(workspace):
    result = run("-w", str(workspace), "--lang", "qq")
    assert result.exit_code == 2
    assert "Unknown language 'qq'" in result.output


def test_bundle_vocabulary_is_preferred(workspace):
    bundle = workspace / "bundle"
    Vocabulary.build([["straße", "groß"], ["straße"]], min_df=1).save(bundle / "vocab.json")
    (bundle / "preprocessing.json").write_text(
        json.dumps(EncodingSettings(text=TextSettings(lang="de")).to_dict()), encoding="utf-8")
    result = run("-w", str(workspace), "--encode", "STRASSE Straße")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Vocabulary from bundle {bundle / 'vocab.json'}: 2 tokens")
    assert "lang de" in result.output
    assert "decoded: <START> <UNK> straße" in result.output
    assert "from training split" in run("-w", str(workspace), "--min-df", "2").output  # options: rebuild


def test_hash_bundle(workspace):
    bundle = workspace / "bundle"
    bundle.mkdir()
    (bundle / "vocab.json").write_text(json.dumps({"kind": "hash", "hash": "blake2b-64-le", "buckets": 5000}))
    result = run("-w", str(workspace))
    assert result.exit_code == 0, result.output
    assert "Hash encoder" in result.output and "stores no tokens" in result.output
    result = run("-w", str(workspace), "--encode", "the ß")
    assert "ids:     1 1738 1687" in result.output
    assert "decoded: <START> <h1738> <h1687>" in result.output


def test_help_is_instant_and_imports_no_spacy():
    code = ("import sys; from typer.testing import CliRunner; from owntrain.cli import app; "
            "r = CliRunner().invoke(app, ['vocab', '--help']); assert r.exit_code == 0, r.output; "
            "assert '--encode' in r.output; print(sorted(m for m in ('spacy', 'tensorflow', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
