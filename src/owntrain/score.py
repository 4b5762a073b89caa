"""Scoring: a bundle plus new texts give a scored copy of the input, streamed in batches.

The scored file keeps every input column, in order, and every input row, in order, and adds:

``predicted_label``
    the predicted class (empty for a row that was not scored)
``p_<class>``
    the probability of each class, one column per class
``threshold``
    two classes only: the decision threshold on ``P(<second class>)`` the bundle uses
``score_status``
    ``ok``; ``empty_text`` (no text, or nothing left after normalisation); ``malformed_row``
    (a CSV row with the wrong number of fields, a JSON line that is not an object: its input
    columns are left empty and the raw row is kept in ``score_detail``)
``score_detail``
    why a row was not scored, with its line number

A name already used by an input column gets a numeric suffix (``predicted_label_2``). The output
format follows the output file's extension, by default the input's (``new.csv`` ->
``new.scored.csv``; ``.gz`` stays compressed). Texts are normalised exactly as ingest did, then
tokenized and encoded as in training. Reading, normalising and tokenizing the next batch runs in
a background thread while the model predicts the current one; at most three batches are in
memory at any time, whatever the input size. The output is written under a temporary name and
renamed at the end, so an interrupted run never leaves half a scored file.
"""

from __future__ import annotations

import csv
import datetime as _dt
import decimal
import gzip
import io
import itertools
import json
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from owntrain.config import DEFAULTS, TEXT_COLUMN_NAMES
from owntrain.errors import InputError, OutputError

STATUS_OK = "ok"
STATUS_EMPTY = "empty_text"
STATUS_MALFORMED = "malformed_row"
LABEL_COLUMN = "predicted_label"
PROBABILITY_PREFIX = "p_"
THRESHOLD_COLUMN = "threshold"
STATUS_COLUMN = "score_status"
DETAIL_COLUMN = "score_detail"


@dataclass(frozen=True)
class ScoreProgress:
    """One progress event of :func:`score_file`: rows written so far and the share of input read."""

    rows: int
    done: int
    total: int

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


ProgressFn = Callable[[ScoreProgress], None]


@dataclass
class ScoreResult:
    """What :func:`score_file` wrote."""

    input: Path
    output: Path
    format: str
    bundle: str
    fingerprint: str
    text_columns: list[str]
    added_columns: list[str]
    rows: int
    scored: int
    empty: int
    malformed: int
    label_counts: dict[str, int]
    seconds: float
    warnings: list[str] = field(default_factory=list)

    @property
    def texts_per_second(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["input"], d["output"] = str(self.input), str(self.output)
        d["texts_per_second"] = round(self.texts_per_second, 1)
        return d


# --------------------------------------------------------------------------- public API


def score_texts(texts: Iterable[Any], bundle: Any = None, *, workspace: str | os.PathLike | None = None) -> Any:
    """Predictions (labels and class probabilities) for texts: ``bundle`` is a Bundle or a path."""
    return _get_bundle(bundle, workspace).predict(texts)


def score_file(
    input: str | os.PathLike,
    *,
    bundle: Any = None,
    output: str | os.PathLike | None = None,
    text_col: str | Sequence[str] | None = None,
    encoding: str = DEFAULTS.encoding,
    delimiter: str | None = None,
    batch_rows: int = DEFAULTS.score_batch_rows,
    workspace: str | os.PathLike | None = None,
    progress: ProgressFn | None = None,
) -> ScoreResult:
    """Score every row of a CSV, TSV, Parquet or JSON Lines file and write the scored copy.

    ``bundle`` is a loaded :class:`~owntrain.bundle.Bundle` or a bundle folder or archive
    (default: the workspace's ``bundle/``). ``output`` defaults to ``<input>.scored.<ext>``
    beside the input. ``text_col`` names the text column(s) (several are joined with newlines,
    as in ingest); by default the bundle's training text columns when the input has them, else
    the first column with a usual text name. ``encoding`` is the input's; the output is UTF-8.
    """
    from owntrain.readers import FolderReader, detect_format, open_table

    if not isinstance(batch_rows, int) or isinstance(batch_rows, bool) or batch_rows < 1:
        raise InputError(f"batch_rows must be a positive whole number, got {batch_rows!r}.")
    t0 = time.perf_counter()
    src = Path(input)
    loaded = _get_bundle(bundle, workspace)
    reader = open_table(src, encoding=encoding, delimiter=delimiter, batch_rows=batch_rows)
    if isinstance(reader, FolderReader):
        raise InputError(f"{src} is a folder; `score` reads one table file (CSV, TSV, Parquet or JSON Lines).")
    in_format = detect_format(src)
    columns = [c for c in reader.columns if c != "__source__"]
    text_columns = _text_columns(src, columns, text_col, loaded.text_columns)
    out = Path(output) if output is not None else default_output(src)
    out_format = detect_format(out)
    if out_format == "folder":
        raise InputError(f"{out} is a folder. Pass -o with a file name such as scored.csv.")
    if out.resolve() == src.resolve():
        raise InputError(f"The output {out} is the input file itself. Pass -o with another file name.")
    added = added_columns(columns, loaded.classes, loaded.threshold is not None)
    from owntrain.bundle import remove_stale_temporaries

    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    counts = _Counts(loaded.classes)
    writer: _Writer | None = None
    try:
        writer = _open_writer(out_format, tmp, out, columns, added, in_format=in_format, reader=reader,
                              n_classes=len(loaded.classes), with_threshold=loaded.threshold is not None)
        batches = _prefetch(_read_batches(reader, text_columns, loaded, batch_rows))
        for batch in batches:
            rows_out = _predict_batch(loaded, batch)
            writer.write(batch.values, rows_out)
            counts.add(batch.status, rows_out)
            if progress is not None:
                progress(ScoreProgress(counts.rows, batch.done, batch.total))
        writer.close()
        os.replace(tmp, out)
    except BaseException as exc:
        if writer is not None:
            writer.abort()
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(
                f"Scoring {src} stopped: {exc.strerror or exc} ({getattr(exc, 'filename', None) or out}). "
                f"No scored file was written to {out}. Free disk space or fix the permissions, then run it again."
            ) from None
        raise
    return ScoreResult(
        input=src, output=out, format=out_format, bundle=str(loaded.path), fingerprint=loaded.fingerprint,
        text_columns=text_columns, added_columns=added, rows=counts.rows, scored=counts.scored,
        empty=counts.empty, malformed=counts.malformed, label_counts=counts.labels,
        seconds=round(time.perf_counter() - t0, 3), warnings=list(loaded.warnings),
    )


def default_output(path: Path) -> Path:
    """``new.csv`` -> ``new.scored.csv``; ``new.csv.gz`` -> ``new.scored.csv.gz``."""
    suffixes = path.suffixes
    n = 2 if len(suffixes) >= 2 and suffixes[-1].lower() == ".gz" else 1
    ext = "".join(suffixes[-n:]) if suffixes else ""
    stem = path.name[: len(path.name) - len(ext)] if ext else path.name
    return path.with_name(f"{stem}.scored{ext}")


def added_columns(columns: Sequence[str], classes: Sequence[str], with_threshold: bool) -> list[str]:
    """Names of the columns scoring adds, made unique against the input's columns."""
    wanted = [LABEL_COLUMN, *(f"{PROBABILITY_PREFIX}{c}" for c in classes)]
    if with_threshold:
        wanted.append(THRESHOLD_COLUMN)
    wanted += [STATUS_COLUMN, DETAIL_COLUMN]
    taken = {c.lower() for c in columns}
    out = []
    for name in wanted:
        candidate, i = name, 1
        while candidate.lower() in taken:
            i += 1
            candidate = f"{name}_{i}"
        taken.add(candidate.lower())
        out.append(candidate)
    return out


# --------------------------------------------------------------------------- internals


def _get_bundle(bundle: Any, workspace: str | os.PathLike | None) -> Any:
    from owntrain.bundle import Bundle, load_bundle

    if isinstance(bundle, Bundle):
        return bundle
    return load_bundle(bundle, workspace=workspace)


def _split_names(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    names = [n.strip() for item in items for n in item.split(",") if n.strip()]
    return names or None


def _text_columns(path: Path, columns: list[str], text_col: str | Sequence[str] | None,
                  trained: list[str] | None) -> list[str]:
    from owntrain.data import resolve_column

    names = _split_names(text_col)
    if names:
        return [resolve_column(path, columns, n, (), "text", "--text-col") for n in names]
    if trained:
        lower = {c.lower(): c for c in columns}
        if all(t.lower() in lower for t in trained):
            return [lower[t.lower()] for t in trained]
    return [resolve_column(path, columns, None, TEXT_COLUMN_NAMES, "text", "--text-col")]


@dataclass
class _Batch:
    values: list[dict[str, Any] | None]
    status: list[str]
    detail: list[str | None]
    seqs: list[np.ndarray]             # for the rows with status ok, in order
    done: int
    total: int


def _read_batches(reader: Any, text_columns: list[str], bundle: Any, batch_rows: int) -> Iterator[_Batch]:
    """Batches of records with their status and the encoded sequences of the scorable ones."""
    from owntrain.data import join_text
    from owntrain.normalize import normalize_text
    from owntrain.readers import ParquetReader

    where = "row" if isinstance(reader, ParquetReader) else "line"

    values: list[dict[str, Any] | None] = []
    status: list[str] = []
    detail: list[str | None] = []
    texts: list[str] = []

    def flush() -> _Batch:
        batch = _Batch(list(values), list(status), list(detail), bundle.encode(texts),
                       reader.bytes_read, reader.bytes_total)
        for part in (values, status, detail, texts):
            part.clear()
        return batch

    for record in reader:
        if record.values is None:
            values.append(None)
            status.append(STATUS_MALFORMED)
            detail.append(f"{where} {record.line}: {record.problem}; raw: {record.raw}")
        else:
            raw, present = join_text(record.values, text_columns)
            text = normalize_text(raw) if raw else ""
            values.append(record.values)
            if text:
                status.append(STATUS_OK)
                detail.append(None)
                texts.append(text)
            else:
                status.append(STATUS_EMPTY)
                what = "text is empty after normalisation" if present and raw else "no text"
                detail.append(f"{where} {record.line}: {what}")
        if len(values) >= batch_rows:
            yield flush()
    if values:
        yield flush()


def _predict_batch(bundle: Any, batch: _Batch) -> list[list[Any]]:
    """The added columns' values of each row of a batch: label, probabilities, [threshold], status, detail."""
    proba = bundle.predict_encoded(batch.seqs)
    labels = bundle.decide(proba)
    n_classes = len(bundle.classes)
    with_threshold = bundle.threshold is not None
    rows = []
    k = 0
    for status, detail in zip(batch.status, batch.detail):
        if status == STATUS_OK:
            row: list[Any] = [labels[k], *(float(p) for p in proba[k])]
            k += 1
        else:
            row = [None] * (1 + n_classes)
        if with_threshold:
            row.append(bundle.threshold)
        row += [status, detail]
        rows.append(row)
    return rows


class _Counts:
    def __init__(self, classes: Sequence[str]) -> None:
        self.labels = {c: 0 for c in classes}
        self.rows = self.scored = self.empty = self.malformed = 0

    def add(self, status: Sequence[str], rows: Sequence[list[Any]]) -> None:
        self.rows += len(status)
        for s, row in zip(status, rows):
            if s == STATUS_OK:
                self.scored += 1
                self.labels[row[0]] += 1
            elif s == STATUS_EMPTY:
                self.empty += 1
            else:
                self.malformed += 1


_DONE = object()


def _prefetch(items: Iterator[Any], depth: int = 1) -> Iterator[Any]:
    """Run ``items`` in a background thread, at most ``depth`` results ahead; exceptions re-raised here."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", _DONE))
        except BaseException as exc:  # re-raised in the consuming thread
            put(("error", exc))

    thread = threading.Thread(target=work, name="owntrain-score-reader", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = q.get()
            if kind == "done":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


# --------------------------------------------------------------------------- writers


def _cell(value: Any) -> str:
    """A value as CSV text: empty for None or NaN, JSON for lists and objects."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "" if value != value else repr(value)
    if isinstance(value, (int, decimal.Decimal)):
        return str(value)
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    return json.dumps(value, ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _text_stream(path: Path, final: Path) -> io.TextIOBase:
    raw = gzip.open(path, "wb") if final.name.lower().endswith(".gz") else open(path, "wb")
    # A lone surrogate (a JSON input may hold "\ud800") cannot be UTF-8; it is written as the escape
    # \ud800, which a JSON reader turns back into the same value, instead of failing the whole file.
    return io.TextIOWrapper(raw, encoding="utf-8", errors="backslashreplace", newline="")  # type: ignore[arg-type]


def _utf8_safe(value: Any) -> Any:
    """A str without lone surrogates (escaped as ``\\udXXX``, as in the text outputs); others unchanged."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


class _Writer:
    def write(self, values: Sequence[dict[str, Any] | None], added: Sequence[list[Any]]) -> None:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover
        raise NotImplementedError

    def abort(self) -> None:  # pragma: no cover
        raise NotImplementedError


class _DelimitedWriter(_Writer):
    def __init__(self, tmp: Path, final: Path, columns: list[str], added: list[str], delimiter: str,
                 n_classes: int) -> None:
        self.fh = _text_stream(tmp, final)
        self.out = csv.writer(self.fh, delimiter=delimiter, lineterminator="\n")
        # csv quotes a field only for the characters of its line terminator: with "\n" a bare "\r" in a
        # value would stay unquoted and split the row when read back. Rows holding one go through a
        # writer ending lines with "\r\n" (which quotes it), and get "\n" like every other line.
        self._buffer = io.StringIO()
        self._cr_writer = csv.writer(self._buffer, delimiter=delimiter, lineterminator="\r\n")
        self.columns = columns
        self.n_probs = n_classes
        self._write_rows([columns + added])

    def _write_rows(self, rows: list[list[str]]) -> None:
        if "\r" not in "".join(itertools.chain.from_iterable(rows)):
            self.out.writerows(rows)
            return
        for row in rows:
            if any("\r" in cell for cell in row):
                self._buffer.seek(0)
                self._buffer.truncate()
                self._cr_writer.writerow(row)
                self.fh.write(self._buffer.getvalue()[:-2] + "\n")
            else:
                self.out.writerow(row)

    def write(self, values: Sequence[dict[str, Any] | None], added: Sequence[list[Any]]) -> None:
        columns, empty = self.columns, [""] * len(self.columns)
        rows = []
        for v, extra in zip(values, added):
            cells = empty if v is None else [_cell(v.get(c)) for c in columns]
            probs = ["" if p is None else f"{p:.6f}" for p in extra[1:1 + self.n_probs]]
            rows.append(cells + [_cell(extra[0]), *probs, *(_cell(x) for x in extra[1 + self.n_probs:])])
        self._write_rows(rows)

    def close(self) -> None:
        self.fh.flush()
        self.fh.close()

    def abort(self) -> None:
        try:
            self.fh.close()
        except Exception:  # pragma: no cover - closing after a failed write
            pass


class _JsonLinesWriter(_Writer):
    def __init__(self, tmp: Path, final: Path, added: list[str]) -> None:
        self.fh = _text_stream(tmp, final)
        self.added = added

    def write(self, values: Sequence[dict[str, Any] | None], added: Sequence[list[Any]]) -> None:
        lines = []
        for v, extra in zip(values, added):
            obj = dict(v) if v is not None else {}
            obj.update(zip(self.added, extra))
            lines.append(json.dumps(obj, ensure_ascii=False, default=_json_default))
        self.fh.write("\n".join(lines) + "\n")

    def close(self) -> None:
        self.fh.flush()
        self.fh.close()

    def abort(self) -> None:
        try:
            self.fh.close()
        except Exception:  # pragma: no cover
            pass


class _ParquetWriter(_Writer):
    """Parquet output: a Parquet input's column types are kept; other inputs' columns become strings."""

    def __init__(self, tmp: Path, columns: list[str], added: list[str], n_classes: int, with_threshold: bool,
                 input_schema: Any | None) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        self.columns = columns
        self.input_schema = input_schema
        in_fields = list(input_schema) if input_schema is not None else [pa.field(c, pa.string()) for c in columns]
        types = [pa.string(), *([pa.float64()] * n_classes)] + ([pa.float64()] if with_threshold else [])
        types += [pa.string(), pa.string()]
        self.added_fields = [pa.field(name, t) for name, t in zip(added, types)]
        self.schema = pa.schema(in_fields + self.added_fields)
        self.writer = pq.ParquetWriter(tmp, self.schema, compression="zstd")

    def write(self, values: Sequence[dict[str, Any] | None], added: Sequence[list[Any]]) -> None:
        pa = self.pa
        if self.input_schema is not None:
            rows = [v if v is not None else {} for v in values]
            table = pa.Table.from_pylist(rows, schema=self.input_schema)
            arrays = list(table.columns)
        else:
            arrays = []
            for c in self.columns:
                cells = [None if v is None or v.get(c) is None else _cell(v.get(c)) for v in values]
                try:
                    arrays.append(pa.array(cells, pa.string()))
                except UnicodeEncodeError:  # lone surrogates from a JSON input
                    arrays.append(pa.array([_utf8_safe(x) for x in cells], pa.string()))
        for j, f in enumerate(self.added_fields):
            arrays.append(pa.array([row[j] for row in added], f.type))
        self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
        pa.default_memory_pool().release_unused()

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        try:
            self.writer.close()
        except Exception:  # pragma: no cover
            pass


def _open_writer(fmt: str, tmp: Path, final: Path, columns: list[str], added: list[str], *, in_format: str,
                 reader: Any, n_classes: int, with_threshold: bool) -> _Writer:
    if fmt in ("csv", "tsv"):
        delimiter = "\t" if fmt == "tsv" else (getattr(reader, "delimiter", ",") if in_format == "csv" else ",")
        return _DelimitedWriter(tmp, final, columns, added, delimiter, n_classes)
    if fmt == "jsonl":
        return _JsonLinesWriter(tmp, final, added)
    schema = None
    if in_format == "parquet":
        import pyarrow.parquet as pq

        schema = pq.ParquetFile(reader.path).schema_arrow
    return _ParquetWriter(tmp, columns, added, n_classes, with_threshold, schema)
