"""Scoring benchmark: `owntrain score` end to end vs raw `model.predict`, bundle size, memory on 1M rows.

    python bench/score_bench.py [--data ../shared/data] [--bundle B | --run RUN_DIR] [--rows 1000000]

1. The bundle: ``--bundle`` (folder or archive), else exported from ``--run``, else from the latest
   finished run of bench/fit_imdb.py's workspace (/tmp/owntrain-bench-imdb), else a quick one is
   trained here on IMDB (1 epoch; the result says so).
2. Its size: the folder's files and the .tar.gz archive.
3. IMDB test.csv (25,000 rows) scored end to end with ``score_file`` (read CSV, normalise,
   tokenize, encode, predict, write), the scored file's accuracy against the true labels next to
   the accuracy `fit`'s evaluation recorded for the run.
4. In the same run, raw ``model.predict`` on pre-encoded, padded arrays (``--predict-rows`` rows of
   the same texts), at the training batch size and at the bundle's; and the tokenize+encode rate.
5. A generated ``--rows`` file (bench/make_big_csv.py --unlabelled) scored by the CLI in a
   subprocess: wall time, texts/s and peak RSS (the kernel's VmHWM), with RSS sampled as it runs.

Prints one JSON object at the end (and writes it to ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
IMDB_BENCH_WORKSPACE = Path("/tmp/owntrain-bench-imdb")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _latest_finished_run(workspace: Path) -> Path | None:
    runs = workspace / "runs"
    if not runs.is_dir():
        return None
    done = [d for d in runs.iterdir() if (d / "model.keras").is_file() and (d / "metrics.json").is_file()]
    return max(done, key=lambda d: (d / "model.keras").stat().st_mtime) if done else None


def _quick_train(data: Path, work: Path) -> Path:
    from owntrain.data import ingest
    from owntrain.train import fit

    ws = work / "ws"
    log(f"no IMDB run found: ingesting and training a quick model (1 epoch) in {ws}")
    if not (ws / "dataset.parquet").is_file():
        ingest([str(data / "imdb" / "train.csv"), str(data / "imdb" / "test.csv")], workspace=ws)
    return fit(ws, epochs=1).run_dir


def get_bundle(args: argparse.Namespace, work: Path) -> tuple[Path, str, Path | None]:
    """(bundle folder or archive, where it came from, its run folder when known)."""
    from owntrain.bundle import export_bundle

    if args.bundle:
        return args.bundle, f"given: {args.bundle}", None
    run = args.run or _latest_finished_run(IMDB_BENCH_WORKSPACE)
    source = f"exported from run {run}" if run else ""
    if run is None:
        run = _quick_train(args.data, work)
        source = f"trained here for this benchmark with epochs=1 (no bench/fit_imdb.py run was found): {run}"
    log(f"exporting the bundle of {run}")
    return export_bundle(run, work / "bundle"), source, Path(run)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else 0.0


def bench_imdb(bundle, data: Path, work: Path, predict_rows: int, run_dir: Path | None) -> dict:
    import numpy as np
    import pandas as pd

    from owntrain.score import score_file

    test_csv = data / "imdb" / "test.csv"
    log(f"scoring {test_csv} end to end")
    t0 = time.perf_counter()
    result = score_file(test_csv, bundle=bundle, output=work / "imdb_test.scored.csv")
    score_s = time.perf_counter() - t0
    out = pd.read_csv(result.output, usecols=["sentiment", "predicted_label", "score_status"])
    accuracy = float((out["predicted_label"] == out["sentiment"]).mean())
    recorded = None
    if run_dir is not None and (run_dir / "metrics.json").is_file():
        recorded = json.loads((run_dir / "metrics.json").read_text())["test"]["accuracy"]
    elif isinstance(bundle.metrics.get("test"), dict):
        recorded = bundle.metrics["test"].get("accuracy")

    texts = pd.read_csv(test_csv, usecols=["text"], nrows=predict_rows)["text"].tolist()
    log(f"tokenizing and encoding {len(texts):,} texts")
    t0 = time.perf_counter()
    seqs = bundle.encode(bundle.normalize(texts))
    encode_s = time.perf_counter() - t0
    x = bundle._pad(seqs, bundle.settings.max_len)
    model = bundle.model
    train_batch = int(bundle.manifest.get("training", {}).get("batch_size", 64))
    raw = {}
    for batch in sorted({train_batch, bundle.batch_size}):
        model.predict(x[:batch], batch_size=batch, verbose=0)  # warm up (tracing) outside the timing
        log(f"model.predict on {len(x):,} pre-encoded arrays, batch {batch}")
        t0 = time.perf_counter()
        model.predict(x, batch_size=batch, verbose=0)
        raw[f"batch_{batch}"] = rate(len(x), time.perf_counter() - t0)
    mode = bundle.batching
    by_mode = {}
    for batching in dict.fromkeys([mode, "fixed"]):
        bundle.batching = batching
        bundle.predict_encoded(seqs[: bundle.batch_size])
        log(f"bundle.predict_encoded on the same sequences, batching {batching}")
        t0 = time.perf_counter()
        proba = bundle.predict_encoded(seqs)
        by_mode[batching] = rate(len(seqs), time.perf_counter() - t0)
        assert np.isfinite(proba).all()
    bundle.batching = mode
    return {
        "rows": result.rows, "scored": result.scored, "seconds": round(score_s, 2),
        "score_texts_per_second": rate(result.scored, score_s),
        "accuracy_of_scored_file": round(accuracy, 6), "accuracy_recorded_by_fit_evaluation": recorded,
        "accuracy_equal": recorded is not None and abs(accuracy - recorded) < 1e-9,
        "same_run": {
            "texts": len(x),
            "tokenize_encode_texts_per_second": rate(len(x), encode_s),
            "model_predict_texts_per_second": raw,
            "mean_sequence_length": round(float(np.mean([len(q) for q in seqs])), 1),
            "bundle_predict_encoded_texts_per_second": by_mode,
        },
    }


class RssSampler:
    """Samples a process's resident memory (VmRSS) and its peak so far (VmHWM) from /proc.

    VmHWM is the kernel's own high-water mark of the program's memory since it started (exec),
    so the last reading is its peak RSS to within the last sampling interval. (wait4's
    ru_maxrss is no good here: after a fork it also counts the parent's pages, and this
    benchmark's parent holds TensorFlow and IMDB.)
    """

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self.peak = 0
        self._stop = threading.Event()
        self._t0 = time.perf_counter()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        last = -1.0
        while not self._stop.wait(self.interval):
            try:
                fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.pid}/status").read_text().splitlines())
                rss = int(fields["VmRSS"].split()[0]) * 1024
                self.peak = max(self.peak, int(fields["VmHWM"].split()[0]) * 1024)
            except (OSError, ValueError, KeyError):
                return  # exited (a zombie has no memory lines)
            now = time.perf_counter() - self._t0
            if now - last >= 1.0:
                self.samples.append((now, rss))
                last = now

    def stop(self) -> None:
        self._stop.set()
        self.thread.join()


def bench_big(archive: Path, work: Path, rows: int, words: int, batch_rows: int | None) -> dict:
    big = work / f"big_{rows}_{words}.csv"
    if not big.is_file():
        log(f"writing {rows:,} rows ({words} words on average) to {big}")
        subprocess.run([sys.executable, str(ROOT / "bench" / "make_big_csv.py"), str(big), "--rows", str(rows),
                        "--words", str(words), "--unlabelled"], check=True)
    out = work / "big.scored.csv"
    cmd = [sys.executable, "-m", "owntrain", "score", str(big), "--bundle", str(archive), "-o", str(out)]
    if batch_rows:
        cmd += ["--batch-rows", str(batch_rows)]
    log("scoring it: " + " ".join(cmd))
    t0 = time.perf_counter()
    log_file = work / "big.score.log"
    with open(log_file, "w") as log_fh:
        proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT)
        sampler = RssSampler(proc.pid)
        _, status, _ = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    sampler.stop()
    peak = sampler.peak
    output = log_file.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"owntrain score failed ({os.waitstatus_to_exitcode(status)}):\n{output[-3000:]}")
    samples = sampler.samples
    picks = [samples[int(f * (len(samples) - 1))] for f in (0.1, 0.25, 0.5, 0.75, 1.0)] if samples else []
    with open(out, "rb") as fh:
        out_lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 24), b""))
    return {
        "rows": rows, "mean_words": words, "input_bytes": big.stat().st_size, "output_lines": out_lines,
        "seconds": round(seconds, 1), "texts_per_second": rate(rows, seconds),
        "peak_rss_bytes": peak, "peak_rss_mb": round(peak / 2**20, 1),
        "rss_mb_at": {f"{t:.0f}s": round(r / 2**20, 1) for t, r in picks},
        "summary": output.strip().splitlines()[:2],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--bundle", type=Path, help="bundle folder or archive to measure")
    ap.add_argument("--run", type=Path, help="run folder to export the bundle from")
    ap.add_argument("--work", type=Path, default=Path("/tmp/owntrain-score-bench"))
    ap.add_argument("--predict-rows", type=int, default=5000, help="rows for the raw model.predict comparison")
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the generated scale-test file (0: skip)")
    ap.add_argument("--words", type=int, default=170, help="mean words per generated text")
    ap.add_argument("--batch-rows", type=int, default=None, help="--batch-rows for the scale test")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if not (args.data / "imdb" / "test.csv").is_file():
        print(f"IMDB not found under {args.data} (expected imdb/test.csv); pass --data.", file=sys.stderr)
        return 2
    args.work.mkdir(parents=True, exist_ok=True)

    from owntrain.bundle import export_archive, load_bundle
    from owntrain.model import import_tensorflow_quietly

    import_tensorflow_quietly()
    folder, source, run_dir = get_bundle(args, args.work)
    if folder.is_dir():
        archive = export_archive(folder, args.work / "bundle.tar.gz")
        sizes = {"folder_bytes": folder_bytes(folder), "archive_bytes": archive.stat().st_size,
                 "files": {p.name: p.stat().st_size for p in sorted(folder.iterdir())}}
    else:
        archive = folder
        sizes = {"archive_bytes": archive.stat().st_size}
    t0 = time.perf_counter()
    bundle = load_bundle(archive)
    load_s = time.perf_counter() - t0
    report = {
        "benchmark": "owntrain score: end to end vs raw model.predict, bundle size, memory on a large file",
        "machine": {"cpu": _cpu(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_start": os.getloadavg()},
        "bundle": {"source": source, "arch": bundle.manifest.get("model", {}).get("arch"),
                   "max_len": bundle.settings.max_len, "batching": bundle.batching,
                   "predict_batch": bundle.batch_size, "load_seconds": round(load_s, 2), **sizes},
        "imdb_test": bench_imdb(bundle, args.data, args.work, args.predict_rows, run_dir),
    }
    if args.rows > 0:
        report["scale"] = bench_big(archive, args.work, args.rows, args.words, args.batch_rows)
    report["machine"]["load_average_at_end"] = os.getloadavg()
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
