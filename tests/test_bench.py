"""The benchmark's machinery (bench/run.py --quick) on tiny generated datasets: files, children, tables.

Only the TF-IDF baseline runs here (no TensorFlow, a few seconds); the Keras systems are the
same child protocol and are exercised by the real runs of the benchmark.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import random
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
pytest.importorskip("sklearn", reason="scikit-learn is a benchmark dependency: pip install -e '.[bench]'")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _texts(rng: random.Random, positive: bool, n_words: int = 12) -> str:
    filler = "the film was a and it of story ein der die das und ist nicht".split()
    cues = ("great wonderful super toll" if positive else "awful boring schlecht mies").split()
    words = rng.choices(filler, k=n_words) + rng.choices(cues, k=2)
    rng.shuffle(words)
    return " ".join(words) + (" <br /> fin" if rng.random() < 0.3 else "")


def _write(path: Path, header: list[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def make_data(root: Path, n: int = 60) -> Path:
    """Folders laid out as ../shared/data is, with a few dozen rows each."""
    rng = random.Random(0)
    for split in ("train", "test"):
        rows = []
        for i in range(n):
            pos = i % 2 == 0
            rows.append([i, 8 if pos else 2, "pos" if pos else "neg", _texts(rng, pos)])
        _write(root / "imdb" / f"{split}.csv", ["id", "rating", "sentiment", "text"], rows)
        stars = [[1 + i % 5, _texts(rng, i % 5 >= 3)] for i in range(n)]
        _write(root / "amazon_reviews_de" / f"{split}.csv", ["stars", "text"], stars)
    _write(root / "filmstarts_de" / "reviews.csv", ["url", "label", "text"],
           [[f"u{i}", "positive" if i % 2 else "negative", _texts(rng, i % 2 == 1)] for i in range(2 * n)])
    for split in ("train", "dev", "test"):
        _write(root / "sst2" / f"{split}.csv", ["label", "sentence"],
               [[i % 2, _texts(rng, i % 2 == 1, 6)] for i in range(n)])
    return root


def test_recipe_vocabulary_follows_the_keras_imdb_convention():
    recipe = _load("recipe")
    assert recipe.tokenize("Great film!<br />Größe: 10/10, don't") == ["great", "film", "größe", "10", "10", "don't"]
    index = recipe.build_word_index(["b a a c", "a b"], top_words=6)
    assert index == {"a": 4, "b": 5}  # ids 0-3 reserved; ids >= top_words are left out (unknown)


def test_quick_run_writes_tables_for_every_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # the run puts its copy of src/ first
    run = _load("run")
    data = make_data(tmp_path / "data")
    out = tmp_path / "out"
    code = run.main(["--data", str(data), "--quick", "--systems", "tfidf-lr", "--skip-scale",
                     "--work", str(tmp_path / "work"), "--out", str(out)])
    assert code == 0
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert doc["complete"] and doc["quick"]
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["versions"]["scikit-learn"]
    by_task = {row["task"]: row for row in doc["rows"]}
    assert set(by_task) == {t.name for t in run.TASKS}
    for row in doc["rows"]:
        assert "error" not in row, row
        assert 0.0 <= row["accuracy"] <= 1.0 and row["peak_rss_mb"] > 0 and row["score_per_second"] > 0
    # 3-star reviews are not part of the binary task; the 5-star task keeps all five classes
    assert by_task["amazon_de_binary"]["train_rows"] == 48 and by_task["amazon_de_5star"]["train_rows"] == 60
    # filmstarts: one file, split by ingest's default split into train (+ validation) and test
    assert by_task["filmstarts_de"]["train_rows"] + by_task["filmstarts_de"]["test_rows"] == 120
    assert by_task["sst2"]["train_rows"] == 120  # train + dev
    # every job ran the run's snapshot of src/, not the working tree
    snapshot = tmp_path / "work" / "src" / "owntrain"
    assert all(Path(row["owntrain_module"]).parent == snapshot for row in doc["rows"])
    table = (out / "results.md").read_text(encoding="utf-8")
    assert "| task | system | accuracy |" in table and table.count("| TF-IDF") == len(run.TASKS)


def test_systems_cover_every_built_in_architecture():
    run = _load("run")
    from owntrain.model import ARCHS

    names = [s.name for s in run.systems()]
    assert names[0] == "recipe" and names[-1] == "tfidf-lr" and "owntrain" in names
    assert len([s for s in run.systems() if s.kind == "owntrain"]) == len(ARCHS) + len(run.OWNTRAIN_VARIANTS)
