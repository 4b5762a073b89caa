"""The benchmark: accuracy and speed of owntrain, the plain Keras recipe and TF-IDF + LR, in one run.

    python bench/run.py [--data ../shared/data] [--quick] [--only imdb,sst2] [--systems recipe,owntrain]
                        [--out bench/results] [--work /tmp/owntrain-bench] [--scale-rows N | --skip-scale]

For every task (TASKS) and every system (systems(): the reference recipe, owntrain with its
defaults, owntrain with each other built-in architecture, TF-IDF + logistic regression), one
child process trains on the task's training files and predicts its test file; the parent reads
the child's peak RSS from ``os.wait4`` (so each system's memory figure is its own). Then the
scale test: ``owntrain.ingest`` and ``owntrain.score_file`` of a generated file of ``--scale-rows``
rows (bench/make_big_csv.py), each in its own child as well.

Results go to ``<out>/results.json`` and ``<out>/results.md`` (rewritten after every job, marked
partial until the run ends), with the CPU, core count, library versions, date and the load
average around each job. ``--quick`` subsamples (2,000 train / 1,000 test rows per task),
trains 1 epoch and scales to 20,000 rows; its results go to ``<work>/results-quick`` unless
``--out`` is given, so they never overwrite the committed full-run results. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))  # recipe.py, baseline.py and fit_imdb.py beside this file
DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEFAULT_WORK = Path("/tmp/owntrain-bench")

FULL = dict(train_rows=None, validation_rows=None, test_rows=None, epochs=None, scale_rows=1_000_000,
            score_rows=2000)
QUICK = dict(train_rows=2000, validation_rows=500, test_rows=1000, epochs=1, scale_rows=20_000, score_rows=1000)
SAMPLE_SEED = 0
SOURCE: Path | None = None  # the run's copy of src/ (snapshot_source), first on the children's PYTHONPATH


# --------------------------------------------------------------------------- what is measured


@dataclass(frozen=True)
class Task:
    """One benchmark task: a dataset folder, its files by split role, columns and language.

    ``files`` maps a role (train, validation, test) to a file in the folder; the single role
    ``all`` means one file split by owntrain ingest's default seeded split (its train and
    validation rows become the task's training file, its test rows the test file).
    """

    name: str
    dataset: str
    title: str
    lang: str
    text_col: str
    label_col: str
    files: dict[str, str]
    label_map: str | None = None   # owntrain's --label-map syntax; the recipe and baseline use the same mapping
    drop_labels: tuple[str, ...] = ()  # raw label values left out of the task's files
    group_runs: tuple[str, int] | None = None  # (id column, n): owntrain ingests with --group-col GROUP_COL
    """Group for owntrain's validation split, where the test file holds other groups than the train file.

    aclImdb's test films are not its training films, and its ids run through each film's reviews in
    a row (per sentiment, at most 30 a film): label plus id // 30 keeps most films' reviews in one
    group, so ingest carves validation from films that training does not see, as test is."""


TASKS: tuple[Task, ...] = (
    Task("imdb", "imdb", "IMDB, pos/neg (en)", "en", "text", "sentiment",
         {"train": "train.csv", "test": "test.csv"}, group_runs=("id", 30)),
    Task("amazon_de_binary", "amazon_reviews_de", "Amazon DE, 1-2 vs 4-5 stars (de)", "de", "text", "stars",
         {"train": "train.csv", "test": "test.csv"}, label_map="1-2=negative,4-5=positive", drop_labels=("3",)),
    Task("amazon_de_5star", "amazon_reviews_de", "Amazon DE, 5 stars (de)", "de", "text", "stars",
         {"train": "train.csv", "test": "test.csv"}),
    Task("filmstarts_de", "filmstarts_de", "filmstarts.de, pos/neg (de)", "de", "text", "label",
         {"all": "reviews.csv"}),
    Task("sst2", "sst2", "SST-2, sentences (en)", "en", "sentence", "label",
         {"train": "train.csv", "validation": "dev.csv", "test": "test.csv"}),
)


@dataclass(frozen=True)
class System:
    name: str
    kind: str                                   # "recipe", "owntrain" or "baseline"
    title: str
    fit: dict[str, Any] = field(default_factory=dict)   # owntrain.fit() keyword arguments (besides lang)


# Extra owntrain rows, one line each: (name, title, owntrain.fit keyword arguments). Every
# architecture in owntrain.model.ARCHS gets a row without being listed here.
OWNTRAIN_VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    ("owntrain-lstm-fixed", "owntrain --arch lstm --batching fixed", {"arch": "lstm", "batching": "fixed"}),
]


def systems() -> list[System]:
    """The rows of every task, in table order."""
    from owntrain.config import DEFAULTS
    from owntrain.model import ARCHS

    rows = [System("recipe", "recipe", "plain Keras recipe")]
    rows.append(System("owntrain", "owntrain", f"owntrain defaults ({DEFAULTS.arch})"))
    rows += [System(f"owntrain-{a}", "owntrain", f"owntrain --arch {a}", {"arch": a}) for a in ARCHS if a != DEFAULTS.arch]
    rows += [System(name, "owntrain", title, dict(kwargs)) for name, title, kwargs in OWNTRAIN_VARIANTS]
    rows.append(System("tfidf-lr", "baseline", "TF-IDF 1-2-gram + LR"))
    return rows


# --------------------------------------------------------------------------- the task's files

GROUP_COL = "group"


def _read_csv(path: Path) -> Any:
    import pandas as pd

    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _sample(df: Any, n: int | None) -> Any:
    return df if n is None or len(df) <= n else df.sample(n=n, random_state=SAMPLE_SEED).sort_index()


def prepare_task(task: Task, data: Path, out: Path, sizes: dict[str, Any]) -> tuple[dict[str, Path], dict[str, int]]:
    """Write the task's train[/validation]/test CSVs (text, label and any group column) under ``out``.

    Every system reads these same files. Rows whose raw label is in ``drop_labels`` are left
    out; ``sizes`` caps each role's rows (a seeded sample, for --quick).
    """
    from owntrain.labels import clean_label

    src = data / task.dataset
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    if set(task.files) == {"all"}:
        frames = _default_split(src / task.files["all"], task, out / "split-workspace")
    else:
        frames = {role: _task_columns(_read_csv(src / name), task) for role, name in task.files.items()}
    paths, counts = {}, {}
    for role, df in frames.items():
        if task.drop_labels:
            df = df[~df[task.label_col].map(clean_label).isin(task.drop_labels)]
        df = _sample(df, sizes.get(f"{role}_rows"))
        paths[role] = out / f"{role}.csv"
        df.to_csv(paths[role], index=False)
        counts[role] = len(df)
    return paths, counts


def _task_columns(df: Any, task: Task) -> Any:
    """The label and text columns of a task file, and its :attr:`Task.group_runs` group as GROUP_COL."""
    out = df[[task.label_col, task.text_col]].copy()
    if task.group_runs:
        id_col, n = task.group_runs
        out[GROUP_COL] = df[task.label_col].astype(str) + "-" + (df[id_col].astype(int) // n).astype(str)
    return out


def _default_split(path: Path, task: Task, workspace: Path) -> dict[str, Any]:
    """owntrain ingest's default seeded split of one file: train + validation rows, test rows (original texts)."""
    import owntrain
    import pandas as pd

    owntrain.ingest(path, workspace=workspace, text_col=task.text_col, label_col=task.label_col)
    df = pd.read_parquet(workspace / "dataset.parquet", columns=["text_original", "label", "split"])
    df = df.rename(columns={"text_original": task.text_col, "label": task.label_col})[[task.label_col, task.text_col, "split"]]
    shutil.rmtree(workspace, ignore_errors=True)
    return {"train": df[df["split"] != "test"].drop(columns="split"), "test": df[df["split"] == "test"].drop(columns="split")}


def read_texts_labels(task: Task, path: Path) -> tuple[list[str], list[str]]:
    """Texts and class names of a task file, labels mapped as owntrain ingest maps them."""
    from owntrain.labels import LabelMap, clean_label

    df = _read_csv(path)
    labels = [clean_label(v) for v in df[task.label_col]]
    if task.label_map:
        lmap = LabelMap(task.label_map)
        labels = [None if v is None else lmap.map(v) for v in labels]
    keep = [i for i, lab in enumerate(labels) if lab is not None]
    texts = df[task.text_col].tolist()
    return [texts[i] for i in keep], [labels[i] for i in keep]


# --------------------------------------------------------------------------- child processes


def cpu_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used since boot (/proc/stat: user, nice, system, irq, softirq)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def run_child(spec: dict[str, Any], log: Path, timeout: float | None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Run one job in a fresh Python process; its result and its own peak RSS, time and CPU contention.

    ``other_cpu`` is how many cores, on average over the job, processes other than the job used
    (the machine's busy CPU time from /proc/stat minus the job's own, per wall second): about 0
    on a quiet machine. The load average is kept too, but the job's own threads raise it.
    """
    spec_path = log.with_suffix(".spec.json")
    result_path = log.with_suffix(".result.json")
    result_path.unlink(missing_ok=True)
    spec = {**spec, "result": str(result_path)}
    spec_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0", "PYTHONUNBUFFERED": "1"}
    if SOURCE is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(SOURCE), *filter(None, [os.environ.get("PYTHONPATH")])])
    load_start = os.getloadavg()[0]
    busy0 = cpu_busy_seconds()
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)],
                                stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
        deadline = None if not timeout else t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline and time.perf_counter() > deadline:
                proc.kill()
                _, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.2)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    own_cpu = usage.ru_utime + usage.ru_stime
    info = {
        "exit_code": proc.returncode,
        "wall_seconds": round(wall, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "cpu_seconds": round(own_cpu, 1),
        "other_cpu": round(max(0.0, (cpu_busy_seconds() - busy0 - own_cpu) / wall), 2),
        "load_start": round(load_start, 2),
        "load_end": round(os.getloadavg()[0], 2),
        "log": str(log),
    }
    result = None
    if proc.returncode == 0 and result_path.is_file():
        result = json.loads(result_path.read_text(encoding="utf-8"))
    return result, info


def child_main(spec_path: Path) -> None:
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    kind = spec["kind"]
    out = {"recipe": child_recipe, "baseline": child_baseline, "owntrain": child_owntrain,
           "scale-ingest": child_scale_ingest, "scale-score": child_scale_score}[kind](spec)
    import owntrain

    out["owntrain_module"] = owntrain.__file__  # the run's snapshot of src/ (snapshot_source)
    Path(spec["result"]).write_text(json.dumps(out, indent=2, default=str), encoding="utf-8")


def _train_test(spec: dict[str, Any]) -> tuple[list[str], list[str], list[str], list[str]]:
    """The recipe's and the baseline's data: they train on every non-test row (train + validation files)."""
    task = Task(**spec["task"])
    files = {role: Path(p) for role, p in spec["files"].items()}
    x, y = [], []
    for role in ("train", "validation"):
        if role in files:
            texts, labels = read_texts_labels(task, files[role])
            x, y = x + texts, y + labels
    x_test, y_test = read_texts_labels(task, files["test"])
    return x, y, x_test, y_test


def child_recipe(spec: dict[str, Any]) -> dict[str, Any]:
    import recipe

    x, y, x_test, y_test = _train_test(spec)
    epochs = spec["epochs"] or recipe.EPOCHS
    return recipe.run(x, y, x_test, y_test, epochs=epochs, model_path=str(Path(spec["workspace"]) / "recipe.keras"))


def child_baseline(spec: dict[str, Any]) -> dict[str, Any]:
    import baseline

    x, y, x_test, y_test = _train_test(spec)
    return baseline.run(x, y, x_test, y_test, model_path=str(Path(spec["workspace"]) / "tfidf-lr.pickle"))


# The bundle and score modules are the public way to score; while they are not importable the
# benchmark falls back to the run's model + encoder (USE_BUNDLE_API) and a pandas loop over the
# file (USE_SCORE_API). Both switches only exist for that transition: set them False to force the
# fallback.
USE_BUNDLE_API = True
USE_SCORE_API = True


def _bundle_api() -> Any:
    if not USE_BUNDLE_API:
        return None
    try:
        from owntrain import bundle
    except ImportError:
        return None
    return bundle


def child_owntrain(spec: dict[str, Any]) -> dict[str, Any]:
    """Ingest the task files, fit, export and load the bundle, score raw test texts: the user's path."""
    import numpy as np

    import owntrain
    from owntrain.model import import_tensorflow_quietly

    import_tensorflow_quietly()
    task = Task(**spec["task"])
    ws = Path(spec["workspace"]) / "ws"
    shutil.rmtree(ws, ignore_errors=True)
    roles = [r for r in ("train", "validation", "test") if r in spec["files"]]

    t0 = time.perf_counter()
    ing = owntrain.ingest([spec["files"][r] for r in roles], workspace=ws, text_col=task.text_col,
                          label_col=task.label_col, label_map=task.label_map, roles=roles,
                          group_col=GROUP_COL if task.group_runs else None)
    t1 = time.perf_counter()

    def progress(event: Any) -> None:
        if event.stage != "batch":
            logs = " ".join(f"{k} {v:.4f}" for k, v in event.logs.items())
            print(f"[{time.perf_counter() - t1:7.1f}s] {event.stage} {event.message} {logs}".rstrip(), flush=True)

    kwargs = dict(spec["system"]["fit"])
    if spec["epochs"]:
        kwargs["epochs"] = spec["epochs"]
    res = owntrain.fit(ws, lang=task.lang, progress=progress, **kwargs)
    t2 = time.perf_counter()
    test = res.metrics["test"]

    # Scoring speed, from raw text, on a seeded sample of the test file (accuracy is fit's, on all of it).
    texts, labels = read_texts_labels(task, Path(spec["files"]["test"]))
    rng = np.random.default_rng(SAMPLE_SEED)
    idx = np.sort(rng.permutation(len(texts))[: spec["score_rows"]])
    sample, sample_labels = [texts[i] for i in idx], [labels[i] for i in idx]
    bundle_api = _bundle_api()
    bundle_dir, bundle_bytes, load_seconds = None, None, None
    if bundle_api is not None:
        bundle_dir = bundle_api.export_bundle(res, ws / "bundle")
        bundle_bytes = sum(p.stat().st_size for p in Path(bundle_dir).rglob("*") if p.is_file())
        t3 = time.perf_counter()
        bundle = bundle_api.load_bundle(bundle_dir, warn=False)
        load_seconds = time.perf_counter() - t3
        bundle.predict(sample[:64])  # warm-up: traces the predict function
        t4 = time.perf_counter()
        predicted = bundle.predict(sample).labels
        t5 = time.perf_counter()
        seqs = bundle.encode(bundle.normalize(sample))
        t6 = time.perf_counter()
        bundle.predict_encoded(seqs)
        t7 = time.perf_counter()
    else:  # fallback until owntrain.bundle exists: the run's encoder and model, as evaluate uses them
        from owntrain.model import load_model, predict_proba
        from owntrain.normalize import normalize_text
        from owntrain.train import load_finished_run
        from owntrain.workspace import Workspace

        run = load_finished_run(Workspace.at(ws), res.run_id)
        model = load_model(run.model_path)
        predict_proba(model, run.encode(sample[:64]), batch_size=run.batch_size)
        t4 = time.perf_counter()
        proba = predict_proba(model, run.encode([normalize_text(t) for t in sample]), batch_size=run.batch_size)
        t5 = time.perf_counter()
        from owntrain.evaluate import predict_ids

        predicted = [run.labels[int(i)] for i in predict_ids(proba, run.threshold)]
        seqs = run.encode([normalize_text(t) for t in sample])
        t6 = time.perf_counter()
        predict_proba(model, seqs, batch_size=run.batch_size)
        t7 = time.perf_counter()
    n = len(sample)
    return {
        "accuracy": test["accuracy"],
        "macro_f1": test["macro_f1"],
        "train_rows": res.metrics["training"]["rows"]["train"],
        "validation_rows": res.metrics["training"]["rows"]["validation"],
        "test_rows": res.metrics["training"]["rows"]["test"],
        "epochs": res.epochs_completed,
        "best_epoch": res.best_epoch,
        "stopped_early": res.stopped_early,
        "threshold": res.threshold,
        "train_seconds": res.train_seconds,
        "fit_wall_seconds": t2 - t1,
        "ingest_seconds": t1 - t0,
        "ingest_rows_kept": ing.rows_kept,
        "train_samples_per_second": res.samples_per_second,
        "predict_rows": n,
        "predict_encoded_per_second": n / (t7 - t6),
        "score_per_second": n / (t5 - t4),
        "score_sample_accuracy": float(np.mean([p == t for p, t in zip(predicted, sample_labels)])),
        "bundle_load_seconds": load_seconds,
        "artifact_bytes": bundle_bytes,
        "bundle_dir": str(bundle_dir) if bundle_dir else None,
        "model": res.model,
        "training": res.training,
        "encoding": res.encoding,
        "history": res.history,
    }


def child_scale_ingest(spec: dict[str, Any]) -> dict[str, Any]:
    import owntrain

    ingest = owntrain.ingest  # imports owntrain.data before the clock starts
    ws = Path(spec["workspace"])
    shutil.rmtree(ws, ignore_errors=True)
    t0 = time.perf_counter()
    res = ingest(spec["input"], workspace=ws)
    seconds = time.perf_counter() - t0
    size = (ws / "dataset.parquet").stat().st_size
    shutil.rmtree(ws, ignore_errors=True)
    return {"rows": res.rows_read, "rows_kept": res.rows_kept, "seconds": seconds, "rows_per_second": res.rows_read / seconds,
            "output_bytes": size}


def child_scale_score(spec: dict[str, Any]) -> dict[str, Any]:
    from owntrain.model import import_tensorflow_quietly

    import_tensorflow_quietly()
    out = Path(spec["output"])
    score_file = None
    if USE_SCORE_API:
        try:
            from owntrain.score import score_file
        except ImportError:
            pass
    t0 = time.perf_counter()  # from here: loading the bundle, reading, scoring and writing the file
    if score_file is not None:
        res = score_file(spec["input"], bundle=spec["bundle"], output=out)
        rows, scored = res.rows, res.scored
    else:  # fallback until owntrain.score exists: stream the file with pandas through Bundle.predict
        import pandas as pd

        bundle = _bundle_api().load_bundle(spec["bundle"], warn=False)
        rows = scored = 0
        with open(out, "w", encoding="utf-8", newline="") as fh:
            for i, chunk in enumerate(pd.read_csv(spec["input"], dtype=str, keep_default_na=False, chunksize=10_000)):
                pred = bundle.predict(chunk["text"].tolist())
                chunk["predicted_label"] = pred.labels
                chunk.to_csv(fh, index=False, header=i == 0)
                rows += len(chunk)
                scored += sum(s == "ok" for s in pred.status)
    seconds = time.perf_counter() - t0
    size = out.stat().st_size
    out.unlink(missing_ok=True)
    return {"rows": rows, "scored": scored, "seconds": seconds, "rows_per_second": rows / seconds,
            "output_bytes": size, "api": "score_file" if score_file is not None else "fallback"}


# --------------------------------------------------------------------------- machine and results


def machine() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    from fit_imdb import _cpu_name  # /proc/cpuinfo's model name

    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for pkg in ("owntrain", "tensorflow", "keras", "spacy", "numpy", "pandas", "pyarrow", "scikit-learn"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src"], capture_output=True, text=True)
    return {"cpu": _cpu_name(), "cores": os.cpu_count(), "memory_gib": mem, "os": platform.platform(),
            "versions": versions, "git_commit": (commit.stdout.strip() or None),
            "src_uncommitted_changes": bool(dirty.stdout.strip())}


COLUMNS = [  # (header, key, format)
    ("accuracy", "accuracy", "{:.3f}"),
    ("macro-F1", "macro_f1", "{:.3f}"),
    ("train s", "train_seconds", "{:,.0f}"),
    ("fit wall s", "fit_wall_seconds", "{:,.0f}"),
    ("train samples/s", "train_samples_per_second", "{:,.0f}"),
    ("predict/s (encoded)", "predict_encoded_per_second", "{:,.0f}"),
    ("score/s (raw text)", "score_per_second", "{:,.0f}"),
    ("peak RSS MB", "peak_rss_mb", "{:,.0f}"),
    ("bundle MB", "artifact_mb", "{:.1f}"),
    ("other CPU", "other_cpu", "{:.2f}"),
]


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    value = row.get(key)
    return "" if value is None else fmt.format(value)


def render_markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    v = m["versions"]
    mode = "quick (subsampled, 1 epoch)" if doc["quick"] else "full"
    lines = [
        "# owntrain benchmark results",
        "",
        f"{'PARTIAL - run did not finish. ' if not doc['complete'] else ''}Mode: **{mode}**; "
        f"{doc['started']} to {doc.get('finished') or '...'} ({doc.get('wall_minutes', '?')} min); "
        f"command `{doc['command']}`.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; {m['os']}. "
        f"Python {v['python']}, TensorFlow {v['tensorflow']}, Keras {v['keras']}, spaCy {v['spacy']}, "
        f"scikit-learn {v['scikit-learn']}, NumPy {v['numpy']}, pandas {v['pandas']}, pyarrow {v['pyarrow']}; "
        f"owntrain {v['owntrain']} at {m['git_commit']}{' + uncommitted src/ changes' if m['src_uncommitted_changes'] else ''} "
        f"(source snapshot {doc.get('owntrain_source', {}).get('sha256')}, used by every job).",
        "",
        "| task | system | " + " | ".join(h for h, _, _ in COLUMNS) + " |",
        "|---|---|" + "---:|" * len(COLUMNS),
    ]
    for row in doc["rows"]:
        if row.get("error"):
            cells = [f"failed: {row['error']}"] + [""] * (len(COLUMNS) - 1)
        else:
            cells = [_cell(row, key, fmt) for _, key, fmt in COLUMNS]
        lines.append(f"| {row['task']} | {row['title']} | " + " | ".join(cells) + " |")
    if doc["scale"]:
        lines += ["", f"Scale: a generated file (bench/make_big_csv.py) of {doc['settings']['scale_rows']:,} rows.", "",
                  "| step | rows | seconds | rows/s | peak RSS MB | other CPU |", "|---|---:|---:|---:|---:|---:|"]
        for row in doc["scale"]:
            if row.get("error"):
                lines.append(f"| {row['step']} | failed: {row['error']} | | | | |")
            else:
                lines.append(f"| {row['step']} | {row['rows']:,} | {row['seconds']:,.0f} | {row['rows_per_second']:,.0f} "
                             f"| {row['peak_rss_mb']:,.0f} | {row['other_cpu']:.2f} |")
    lines += _checks(doc["rows"])
    lines += ["", "Columns: see bench/README.md. In short: accuracy and macro-F1 on the task's test file; "
              "train s = time in training epochs (owntrain's include its per-epoch validation pass); fit wall s = "
              "raw training texts to trained model (vocabulary, encoding, epochs; owntrain also checkpoints and "
              "evaluates); predict/s = model on already-encoded inputs; score/s = from raw text to predictions; "
              "peak RSS of the system's own process; bundle MB = owntrain's bundle folder (recipe: .keras + word "
              "index; TF-IDF: pickle); other CPU = cores used by other processes during the job, on average "
              f"(of {m['cores']}: near 0 on a quiet machine; more means the speed figures of that row are low).", ""]
    return "\n".join(lines)


def _checks(rows: list[dict[str, Any]]) -> list[str]:
    """The speed and accuracy targets, as ratios within this run (only for rows that finished)."""
    ok = {(r["task"], r["system"]): r for r in rows if not r.get("error") and r.get("accuracy") is not None}
    lines: list[str] = []
    recipe, default = ok.get(("imdb", "recipe")), ok.get(("imdb", "owntrain"))
    if recipe and default:
        lines += ["", "Checks (ratios within this run):", "",
                  f"- IMDB fit wall time, owntrain defaults / plain recipe: {default['fit_wall_seconds']:,.0f} s / "
                  f"{recipe['fit_wall_seconds']:,.0f} s = {default['fit_wall_seconds'] / recipe['fit_wall_seconds']:.2f} "
                  f"(target at most 0.50), accuracy {default['accuracy']:.3f} vs {recipe['accuracy']:.3f}",
                  f"- IMDB scoring from raw text, owntrain defaults / the recipe predicting encoded arrays: "
                  f"{default['score_per_second']:,.0f} / {recipe['predict_encoded_per_second']:,.0f} texts/s = "
                  f"{default['score_per_second'] / recipe['predict_encoded_per_second']:.2f} (target at least 1.5)"]
        lstm = ok.get(("imdb", "owntrain-lstm"))
        if lstm:
            lines.append(f"- IMDB, the recipe's model in owntrain (bucketed) / the plain recipe: train "
                         f"{lstm['train_seconds']:,.0f} s / {recipe['train_seconds']:,.0f} s = "
                         f"{lstm['train_seconds'] / recipe['train_seconds']:.2f}, predict encoded "
                         f"{lstm['predict_encoded_per_second'] / recipe['predict_encoded_per_second']:.2f}x, accuracy "
                         f"{lstm['accuracy']:.3f} vs {recipe['accuracy']:.3f}")
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    for task in tasks:
        base = ok.get((task, "tfidf-lr"))
        mine = [r for (t, name), r in ok.items() if t == task
                and name.startswith("owntrain")]
        if not base or not mine:
            continue
        best = max(mine, key=lambda r: r["accuracy"])
        if not lines:
            lines += ["", "Checks (ratios within this run):", ""]
        verdict = "beats" if best["accuracy"] > base["accuracy"] else "does not beat"
        lines.append(f"- {task}: best owntrain row ({best['title']}) {best['accuracy']:.3f} {verdict} TF-IDF + LR "
                     f"{base['accuracy']:.3f} ({best['accuracy'] - base['accuracy']:+.3f})")
    lines += _one_system_checks(ok, tasks)
    return lines


def _one_system_checks(ok: dict[tuple[str, str], dict[str, Any]], tasks: list[str]) -> list[str]:
    """Which single owntrain row beats TF-IDF + LR on every task of this run, and its IMDB accuracy (target 0.91)."""
    compared = [t for t in tasks if (t, "tfidf-lr") in ok]
    names = list(dict.fromkeys(name for (_, name) in ok if name.startswith("owntrain")))
    if not compared or not names:
        return []
    everywhere = [n for n in names if all((t, n) in ok and ok[(t, n)]["accuracy"] > ok[(t, "tfidf-lr")]["accuracy"]
                                          for t in compared)]
    titles = ", ".join(ok[(compared[0], n)]["title"] for n in everywhere) or "none"
    lines = [f"- One owntrain row beating TF-IDF + LR on all {len(compared)} tasks of this run: {titles}"]
    for n in everywhere:
        if ("imdb", n) in ok:
            acc = ok[("imdb", n)]["accuracy"]
            lines.append(f"- IMDB accuracy of {ok[('imdb', n)]['title']}: {acc:.3f} (target at least 0.91: "
                         f"{'met' if acc >= 0.91 else 'not met'})")
    return lines


def write_results(doc: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "results.md").write_text(render_markdown(doc), encoding="utf-8")


# --------------------------------------------------------------------------- the run


def _selected(items: list[Any], names: str | None, what: str, aliases: Any = lambda item: ()) -> list[Any]:
    if not names:
        return items
    wanted = {s.strip() for s in names.split(",") if s.strip()}
    known = {item.name for item in items} | {a for item in items for a in aliases(item)}
    unknown = sorted(wanted - known)
    if unknown:
        raise SystemExit(f"Unknown {what}: {', '.join(unknown)}. Known: {', '.join(sorted(known))}.")
    return [item for item in items if item.name in wanted or wanted & set(aliases(item))]


def scale_files(work: Path, rows: int) -> tuple[Path, Path]:
    """The generated labelled (ingest) and unlabelled (score) files, made once and kept in the work folder."""
    folder = work / "scale"
    folder.mkdir(parents=True, exist_ok=True)
    paths = (folder / f"big-{rows}.csv", folder / f"big-{rows}-unlabelled.csv")
    for path, extra in zip(paths, ([], ["--unlabelled"])):
        if not path.is_file():
            tmp = path.with_suffix(".tmp.csv")
            subprocess.run([sys.executable, str(BENCH / "make_big_csv.py"), str(tmp), "--rows", str(rows), *extra],
                           check=True)
            os.replace(tmp, path)
    return paths


def snapshot_source(work: Path) -> tuple[Path, str]:
    """Copy src/owntrain to ``<work>/src`` and put it first on the import path, for this run and its children.

    The whole run then measures one version of owntrain even while the working tree is being
    edited. Returns the folder and a fingerprint of its files (SHA-256 of paths and contents).
    """
    import hashlib

    dest = work / "src"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(ROOT / "src" / "owntrain", dest / "owntrain", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    digest = hashlib.sha256()
    for path in sorted(p for p in (dest / "owntrain").rglob("*") if p.is_file()):
        digest.update(path.relative_to(dest).as_posix().encode() + b"\0" + path.read_bytes())
    sys.path.insert(0, str(dest))
    global SOURCE
    SOURCE = dest
    return dest, digest.hexdigest()[:16]


def check_source() -> None:
    """Import the modules every owntrain row needs (no TensorFlow), so a broken tree fails the run at once."""
    import importlib

    for name in ("owntrain.data", "owntrain.train", "owntrain.model", "owntrain.bundle", "owntrain.score"):
        try:
            importlib.import_module(name)
        except ImportError as exc:
            if name == "owntrain.score" and exc.name == name:
                continue  # not written yet: the scale test falls back (USE_SCORE_API)
            raise SystemExit(f"owntrain's source does not import ({name}: {exc}); is src/ in the middle of an edit? "
                             "Nothing was measured.") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with imdb/, amazon_reviews_de/, ... (default %(default)s)")
    ap.add_argument("--quick", action="store_true", help="2,000 train / 1,000 test rows per task, 1 epoch, scale 20,000 rows")
    ap.add_argument("--only", help="comma-separated tasks or dataset folders, e.g. imdb,amazon_reviews_de")
    ap.add_argument("--systems", help="comma-separated systems, e.g. recipe,owntrain,tfidf-lr")
    ap.add_argument("--out", type=Path, help="results folder (default bench/results; with --quick <work>/results-quick)")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="scratch folder: task files, workspaces, logs (default %(default)s)")
    ap.add_argument("--scale-rows", type=int, help="rows of the generated scale file (default 1,000,000; --quick 20,000)")
    ap.add_argument("--skip-scale", action="store_true", help="no scale test")
    ap.add_argument("--job-timeout", type=float, default=0, help="kill a job after this many seconds (0: never)")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child_main(args.child)
        return 0

    work = args.work.resolve()
    (work / "logs").mkdir(parents=True, exist_ok=True)
    source, source_digest = snapshot_source(work)
    check_source()
    settings = dict(QUICK if args.quick else FULL)
    if args.scale_rows:
        settings["scale_rows"] = args.scale_rows
    if not args.data.is_dir():
        ap.error(f"data folder {args.data} not found; pass --data")
    tasks = _selected(list(TASKS), args.only, "task", lambda t: (t.dataset,))
    tasks = [t for t in tasks if (args.data / t.dataset).is_dir()] or ap.error(f"none of the tasks' folders are in {args.data}")
    rows_of = _selected(systems(), args.systems, "system")
    out = args.out or (args.work / "results-quick" if args.quick else BENCH / "results")

    started = time.time()
    doc: dict[str, Any] = {
        "complete": False, "quick": args.quick,
        "started": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(["python", "bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(), "owntrain_source": {"snapshot": str(source), "sha256": source_digest},
        "settings": settings, "load_average_start": os.getloadavg(),
        "tasks": [asdict(t) for t in tasks], "systems": [asdict(s) for s in rows_of], "rows": [], "scale": [],
    }
    if os.getloadavg()[0] > 1.0:
        print(f"warning: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: other processes compete "
              "for the CPU, so the speed figures will be low", flush=True)

    def say(msg: str) -> None:
        print(f"[{(time.time() - started) / 60:5.1f} min] {msg}", flush=True)

    default_bundle = None
    for task in tasks:
        try:
            files, counts = prepare_task(task, args.data, work / "tasks" / task.name, settings)
        except Exception as exc:  # one task's data must not cost the others their rows
            say(f"{task.name}: could not prepare its files ({type(exc).__name__}: {exc})")
            doc["rows"] += [{"task": task.name, "system": s.name, "title": s.title,
                             "error": f"task files: {type(exc).__name__}: {str(exc)[:160]}"} for s in rows_of]
            write_results(doc, out)
            continue
        say(f"{task.name}: " + ", ".join(f"{role} {n:,} rows" for role, n in counts.items()))
        for system in rows_of:
            job = f"{task.name}__{system.name}"
            job_dir = work / "jobs" / job
            shutil.rmtree(job_dir, ignore_errors=True)
            job_dir.mkdir(parents=True)
            spec = {"kind": system.kind, "system": asdict(system), "task": asdict(task),
                    "files": {r: str(p) for r, p in files.items()}, "epochs": settings["epochs"],
                    "score_rows": settings["score_rows"], "workspace": str(job_dir)}
            result, info = run_child(spec, work / "logs" / f"{job}.log", args.job_timeout)
            row = {"task": task.name, "system": system.name, "title": system.title, **info}
            if result is None:
                tail = Path(info["log"]).read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
                row["error"] = f"exit {info['exit_code']}: {tail[0][:200] if tail else ''}"
                say(f"{job}: FAILED ({row['error']}); log {info['log']}")
            else:
                row.update(result)
                if row.get("artifact_bytes"):
                    row["artifact_mb"] = row["artifact_bytes"] / 1e6
                say(f"{job}: accuracy {row['accuracy']:.3f}, train {row['train_seconds']:.0f} s, score "
                    f"{row['score_per_second']:,.0f}/s, peak {row['peak_rss_mb']:,.0f} MB, {info['wall_seconds']:.0f} s "
                    f"(other processes: {info['other_cpu']:.2f} cores)")
                if system.name == "owntrain" and default_bundle is None and row.get("bundle_dir"):
                    default_bundle = row["bundle_dir"]
            doc["rows"].append(row)
            write_results(doc, out)

    if not args.skip_scale:
        n = settings["scale_rows"]
        say(f"scale: generating {n:,}-row files (cached in {work / 'scale'})")
        labelled, unlabelled = scale_files(work, n)
        steps = [("ingest", {"kind": "scale-ingest", "input": str(labelled), "workspace": str(work / "scale" / "ws")})]
        if default_bundle:
            steps.append(("score", {"kind": "scale-score", "input": str(unlabelled), "bundle": default_bundle,
                                    "output": str(work / "scale" / "scored.csv")}))
        else:
            say("scale: no owntrain default bundle from this run to score with; scale score skipped")
        for step, spec in steps:
            result, info = run_child(spec, work / "logs" / f"scale__{step}.log", args.job_timeout)
            row = {"step": step, "input_bytes": Path(spec["input"]).stat().st_size, **info}
            if result is None:
                row["error"] = f"exit {info['exit_code']} (log {info['log']})"
                say(f"scale {step}: FAILED; log {info['log']}")
            else:
                row.update(result)
                say(f"scale {step}: {row['rows']:,} rows in {row['seconds']:.0f} s, {row['rows_per_second']:,.0f} rows/s, "
                    f"peak {row['peak_rss_mb']:,.0f} MB (other processes: {info['other_cpu']:.2f} cores)")
            if step == "score":
                row["bundle"] = default_bundle
            doc["scale"].append(row)
            write_results(doc, out)

    doc["complete"] = True
    doc["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    doc["wall_minutes"] = round((time.time() - started) / 60, 1)
    doc["load_average_end"] = os.getloadavg()
    write_results(doc, out)
    say(f"done: {out / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
