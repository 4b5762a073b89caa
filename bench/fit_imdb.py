"""Train owntrain with its defaults on IMDB train.csv, test on test.csv: accuracy and wall time.

    python bench/fit_imdb.py [--data ../shared/data/imdb] [--workspace /tmp/owntrain-bench-imdb]

The workspace is made by `owntrain.ingest` from train.csv and test.csv (roles from the file names;
the validation split is carved out of train.csv), so the test figures are on the official
25,000-review test set. Extra `--set key=value` pairs are passed to `owntrain.train.fit`
(e.g. --set epochs=1 --set arch=flatten). Prints one JSON object at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"none": None, "true": True, "false": False}.get(text.lower(), text)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "imdb")
    ap.add_argument("--workspace", type=Path, default=Path("/tmp/owntrain-bench-imdb"))
    ap.add_argument("--reuse", action="store_true", help="Keep an existing ingested workspace.")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="Extra fit() arguments.")
    ap.add_argument("--out", type=Path, help="Also write the result JSON here.")
    args = ap.parse_args()
    train_csv, test_csv = args.data / "train.csv", args.data / "test.csv"
    if not train_csv.is_file() or not test_csv.is_file():
        print(f"IMDB files not found under {args.data} (expected train.csv, test.csv); pass --data.", file=sys.stderr)
        return 2
    extra = dict(kv.split("=", 1) for kv in args.set)
    extra = {k: _value(v) for k, v in extra.items()}

    from owntrain.data import ingest
    from owntrain.train import fit

    t0 = time.perf_counter()
    if not (args.reuse and (args.workspace / "dataset.parquet").is_file()):
        shutil.rmtree(args.workspace, ignore_errors=True)
        ingest([str(train_csv), str(test_csv)], workspace=args.workspace)
    else:
        shutil.rmtree(args.workspace / "runs", ignore_errors=True)
    t_ingest = time.perf_counter() - t0

    marks: dict[str, float] = {}

    def progress(event) -> None:
        now = time.perf_counter()
        if event.stage == "batch":
            return
        if event.stage == "start":
            marks.setdefault("train_start", now)
        if event.stage == "evaluate":
            marks.setdefault("evaluate_start", now)
        if event.stage == "epoch":
            logs = " ".join(f"{k} {v:.4f}" for k, v in event.logs.items())
            print(f"[{now - t1:7.1f}s] epoch {event.epoch}/{event.epochs} {logs} ({event.epoch_seconds:.1f}s)", flush=True)
        else:
            print(f"[{now - t1:7.1f}s] {event.message}", flush=True)

    t1 = time.perf_counter()
    c1 = time.process_time()
    result = fit(args.workspace, progress=progress, **extra)
    t_fit = time.perf_counter() - t1
    c_fit = time.process_time() - c1
    test = result.metrics["test"]
    import keras
    import tensorflow as tf

    out = {
        "benchmark": "owntrain fit, defaults, IMDB train.csv -> test.csv",
        "settings": {**result.model, **result.training, "max_len": result.encoding["max_len"]},
        "rows": result.metrics["training"]["rows"],
        "test_accuracy": test["accuracy"],
        "test_macro_f1": test["macro_f1"],
        "test_roc_auc": test.get("roc_auc"),
        "threshold": result.threshold,
        "baseline_accuracy": result.metrics["baseline"]["accuracy"],
        "epochs_completed": result.epochs_completed,
        "best_epoch": result.best_epoch,
        "epoch_seconds": json.loads((result.run_dir / "state.json").read_text())["epoch_seconds"],
        "train_seconds": result.train_seconds,
        "train_samples_per_second": result.samples_per_second,
        "ingest_seconds": round(t_ingest, 1),
        "encode_seconds": round(marks.get("train_start", t1) - t1, 1),
        "evaluate_seconds": round(t1 + t_fit - marks.get("evaluate_start", t1 + t_fit), 1),
        "fit_wall_seconds": round(t_fit, 1),
        "fit_cpu_seconds": round(c_fit, 1),
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__},
        "run_dir": str(result.run_dir),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
