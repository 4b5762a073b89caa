"""Ingest: read labelled texts, validate, normalise, split, and write the workspace.

Two streaming passes keep memory bounded whatever the input size. Pass 1 reads every file in
batches, rejects malformed rows, normalises the kept ones and writes them to a temporary Parquet
file, keeping only a 64-bit text hash, a label code and a role per row in memory. Between the
passes duplicates, conflicting labels and too-rare labels are found and the split is assigned.
Pass 2 streams the temporary file into ``dataset.parquet``. Every rejected row goes to
``rejects.csv`` with its file, line and reason: rows in = rows kept + rows rejected, always.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from owntrain import split as splitting
from owntrain.config import DEFAULTS, LABEL_COLUMN_NAMES, SPLIT_COLUMN_NAMES, SPLITS, TEXT_COLUMN_NAMES
from owntrain.errors import ColumnNotFoundError, InputError, ValidationError
from owntrain.labels import LabelMap, class_order, clean_label
from owntrain.normalize import NORMALIZATION_VERSION, normalize_text
from owntrain.readers import FolderReader, TableReader, iter_parquet_batches, open_table
from owntrain.workspace import Workspace, write_json_atomic

ProgressFn = Callable[[int, int], None]

REJECT_COLUMNS = ["source_file", "line", "reason", "detail", "label", "text"]
DATASET_COLUMNS = ["text", "text_original", "label", "split", "source_file", "source_line"]
REASONS = {
    "malformed_row": "the row could not be read as a record",
    "empty_text": "no text, or nothing but markup and whitespace",
    "missing_label": "no label",
    "unmapped_label": "the label value is not covered by --label-map",
    "bad_split": "the split column holds a value that names no split",
    "duplicate": "the same text appeared earlier (only with --drop-duplicates)",
    "conflicting_labels": "the same text appears with different labels (only with --drop-conflicts)",
    "rare_label": "the label has too few examples to split",
    "label_not_in_train": "the label never occurs in the training split",
}


# --------------------------------------------------------------------------- columns


def _lower_map(columns: Sequence[str]) -> dict[str, str]:
    return {c.strip().lower(): c for c in reversed(columns)}


def _missing_column(path: Path, what: str, name: str | None, columns: Sequence[str], option: str) -> ColumnNotFoundError:
    listed = ", ".join(columns)
    if name is not None:
        return ColumnNotFoundError(f"Column {name!r} not found in {path}. Columns: {listed}. "
                                   f"Pass {option} with one of them.")
    hint = " (repeat it to join several, e.g. --text-col title --text-col pros)" if option == "--text-col" else ""
    return ColumnNotFoundError(f"Could not find the {what} column in {path}. Columns: {listed}. "
                               f"Pass {option} NAME{hint}.")


def resolve_column(path: Path, columns: Sequence[str], name: str | None, candidates: Sequence[str],
                   what: str, option: str, exclude: Sequence[str] = ()) -> str:
    """The column to use: ``name`` if given (case-insensitive), else the first common name found."""
    lower = _lower_map(columns)
    if name is not None:
        if name in columns:
            return name
        if name.strip().lower() in lower:
            return lower[name.strip().lower()]
        raise _missing_column(path, what, name, columns, option)
    for candidate in candidates:
        if candidate in lower and lower[candidate] not in exclude:
            return lower[candidate]
    raise _missing_column(path, what, None, columns, option)


def _split_names(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    names = [n.strip() for item in items for n in item.split(",") if n.strip()]
    return names or None


@dataclass
class _Columns:
    text: list[str]
    label: str | None
    split: str | None
    group: str | None = None


def _resolve_columns(reader: TableReader, text_cols: list[str] | None, label_col: str | None,
                     split_col: str | None, need_label: bool, group_col: str | None = None) -> _Columns:
    cols = [c for c in reader.columns if c != "__source__"]
    if text_cols:
        text = [resolve_column(reader.path, cols, n, (), "text", "--text-col") for n in text_cols]
    else:
        text = [resolve_column(reader.path, cols, None, TEXT_COLUMN_NAMES, "text", "--text-col")]
    label = None
    if need_label:
        label = resolve_column(reader.path, cols, label_col, LABEL_COLUMN_NAMES, "label", "--label-col", exclude=text)
        if label in text:
            raise InputError(f"{reader.path}: column {label!r} cannot be both the text and the label. "
                             "Pass --text-col and --label-col with different columns.")
    split = None
    if split_col is not None:
        split = resolve_column(reader.path, cols, split_col, (), "split", "--split-col")
    else:
        lower = _lower_map(cols)
        for candidate in SPLIT_COLUMN_NAMES[:1]:  # only a column literally named 'split' is taken unasked
            if candidate in lower and lower[candidate] not in text and lower[candidate] != label:
                split = lower[candidate]
    group = None
    if group_col is not None:
        group = resolve_column(reader.path, cols, group_col, (), "group", "--group-col")
        if group in text or group == label:
            raise InputError(f"{reader.path}: column {group!r} cannot be both the group and the "
                             f"{'text' if group in text else 'label'}. Pass --group-col with the column that names "
                             "each row's group (a product, customer or film id).")
    return _Columns(text, label, split, group)


def join_text(values: dict[str, Any], columns: list[str]) -> tuple[str, bool]:
    """The raw text of a record (several columns joined by newlines) and whether any was present."""
    parts = []
    present = False
    for column in columns:
        value = values.get(column)
        if value is None or (isinstance(value, float) and value != value):
            continue
        present = True
        value = value if isinstance(value, str) else str(value)
        if value.strip():
            parts.append(value)
    return "\n".join(parts), present


# --------------------------------------------------------------------------- rejects


class _RejectWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = open(path, "w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._fh)
        self._writer.writerow(REJECT_COLUMNS)
        self.counts: Counter[str] = Counter()

    def write(self, source: str, line: int, reason: str, detail: str, label: Any, text: Any) -> None:
        self.counts[reason] += 1
        self._writer.writerow([source, line, reason, detail, _safe("" if label is None else str(label)),
                               _safe("" if text is None else str(text))])

    def close(self) -> None:
        self._fh.close()


def _safe(text: str) -> str:
    """Text that can be written as UTF-8 (lone surrogates from JSON become U+FFFD)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


# --------------------------------------------------------------------------- result


@dataclass
class IngestResult:
    """What ingest wrote and the report it computed (also saved as ``ingest_report.json``)."""

    workspace: Path
    dataset: Path
    report_path: Path
    rejects: Path
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_read(self) -> int:
        return int(self.report["rows"]["read"])

    @property
    def rows_kept(self) -> int:
        return int(self.report["rows"]["kept"])

    @property
    def rows_rejected(self) -> int:
        return int(self.report["rows"]["rejected"])


# --------------------------------------------------------------------------- ingest


def _roles_for(paths: list[Path], roles: Sequence[str] | None) -> list[int | None]:
    if roles:
        if len(roles) != len(paths):
            raise InputError(f"--roles lists {len(roles)} role(s) for {len(paths)} input(s); give one per input, "
                             "in order, e.g. --roles train,test.")
        out = []
        for role in roles:
            code = splitting.split_code(role)
            if code is None:
                raise InputError(f"--roles: {role!r} names no split. Use train, validation or test.")
            out.append(code)
        return out
    if len(paths) == 1:
        return [None]
    found = [splitting.role_from_filename(p.name) for p in paths]
    if any(r is None for r in found) and any(r is not None for r in found):
        unknown = ", ".join(p.name for p, r in zip(paths, found) if r is None)
        raise InputError(f"Cannot tell the split role of {unknown} from its name. Pass --roles with one role per "
                         "input (train, validation or test), e.g. --roles train,test.")
    return found


def ingest(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    workspace: str | os.PathLike | None = None,
    text_col: str | Sequence[str] | None = None,
    label_col: str | None = None,
    split_col: str | None = None,
    group_col: str | None = None,
    roles: Sequence[str] | None = None,
    label_map: str | None = None,
    encoding: str = DEFAULTS.encoding,
    delimiter: str | None = None,
    seed: int = DEFAULTS.seed,
    split_fractions: tuple[float, float, float] = DEFAULTS.split_fractions,
    min_examples_per_label: int = DEFAULTS.min_examples_per_label,
    drop_duplicates: bool = False,
    drop_conflicts: bool = False,
    batch_rows: int = DEFAULTS.batch_rows,
    progress: ProgressFn | None = None,
) -> IngestResult:
    """Read, validate, normalise and split labelled texts into the workspace.

    ``group_col`` names a column whose equal values (a product, a customer, a film) must never
    straddle the train, validation and test splits that ingest assigns; see :mod:`owntrain.split`.

    Returns an :class:`IngestResult`; raises :class:`owntrain.errors.OwntrainError` subclasses
    for input that cannot be used (missing file or column, undecodable bytes, nothing left to train on).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path_list = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    if not path_list:
        raise InputError("No input given. Pass one or more files, e.g. `owntrain ingest reviews.csv`.")
    if len(split_fractions) != 3 or any(f < 0 for f in split_fractions) or abs(sum(split_fractions) - 1) > 1e-6 \
            or split_fractions[0] <= 0:
        raise InputError(f"Split fractions {split_fractions} must be three non-negative numbers summing to 1 "
                         "with a non-zero training share, e.g. 0.8,0.1,0.1.")
    text_cols = _split_names(text_col)
    lmap = LabelMap(label_map) if label_map else None
    file_roles = _roles_for(path_list, roles)
    readers = [open_table(p, encoding=encoding, delimiter=delimiter, batch_rows=batch_rows) for p in path_list]
    columns = [_resolve_columns(r, text_cols, label_col, split_col, need_label=True, group_col=group_col)
               for r in readers]

    ws = Workspace.at(workspace)
    ws.root.mkdir(parents=True, exist_ok=True)
    _remove_stale_ingest_folders(ws.root)
    tmpdir = ws.root / f".ingest-{os.getpid()}"
    shutil.rmtree(tmpdir, ignore_errors=True)
    tmpdir.mkdir()
    try:
        return _run(ws, tmpdir, readers, columns, file_roles, lmap, seed, tuple(split_fractions),
                    min_examples_per_label, drop_duplicates, drop_conflicts, batch_rows, progress, pa, pq, encoding)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _remove_stale_ingest_folders(root: Path) -> None:
    """Remove ``.ingest-<pid>`` folders that a killed ingest (SIGKILL, power loss) left behind."""
    from owntrain.bundle import _pid_alive

    for folder in root.glob(".ingest-*"):
        pid = folder.name[len(".ingest-"):]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)) and folder.is_dir() \
                and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)


_STAGE_SCHEMA_FIELDS = [("text", "string"), ("text_original", "string"), ("label", "string"),
                        ("source_file", "string"), ("source_line", "int64")]


def _run(ws: Workspace, tmpdir: Path, readers: list[TableReader], columns: list[_Columns],
         file_roles: list[int | None], lmap: LabelMap | None, seed: int,
         fractions: tuple[float, float, float], min_examples: int, drop_duplicates: bool,
         drop_conflicts: bool, batch_rows: int, progress: ProgressFn | None, pa: Any, pq: Any, encoding: str) -> IngestResult:
    schema = pa.schema([(n, getattr(pa, t)()) for n, t in _STAGE_SCHEMA_FIELDS])
    pool = pa.default_memory_pool()
    stage_path = tmpdir / "stage.parquet"
    rejects = _RejectWriter(tmpdir / "rejects.csv")
    stage = pq.ParquetWriter(stage_path, schema, compression="zstd")
    hashes: list[int] = []
    groups: list[int] = []
    label_ids: list[int] = []
    row_roles: list[int] = []
    label_index: dict[str, int] = {}
    unmapped: Counter[str] = Counter()
    inputs_report = []
    rows_read = 0
    total_bytes = sum(r.bytes_total for r in readers)
    done_before = 0
    batch: dict[str, list[Any]] = {n: [] for n, _ in _STAGE_SCHEMA_FIELDS}

    def flush() -> None:
        if batch["text"]:
            try:
                table = pa.table(batch, schema=schema)
            except (pa.ArrowInvalid, UnicodeEncodeError):
                table = pa.table({k: ([_safe(v) for v in vals] if k != "source_line" else vals)
                                  for k, vals in batch.items()}, schema=schema)
            stage.write_table(table)
            pool.release_unused()  # arrow's allocator keeps freed pages otherwise; RSS would grow with input
            for values in batch.values():
                values.clear()

    for reader, cols, role in zip(readers, columns, file_roles):
        source = str(reader.path)
        file_rows = 0
        for record in reader:
            rows_read += 1
            file_rows += 1
            src = source
            if record.values is None:
                rejects.write(src, record.line, "malformed_row", record.problem or "", None, record.raw)
                continue
            values = record.values
            if "__source__" in values:
                src = values["__source__"]
            raw_text, present = join_text(values, cols.text)
            raw_label = values.get(cols.label) if cols.label else None
            text = normalize_text(raw_text)
            if not text:
                detail = "text is empty after normalisation" if present and raw_text else "no text"
                rejects.write(src, record.line, "empty_text", detail, raw_label, raw_text)
                continue
            label = clean_label(raw_label)
            if label is None:
                rejects.write(src, record.line, "missing_label", f"column {cols.label!r} is empty", raw_label, raw_text)
                continue
            if lmap is not None:
                mapped = lmap.map(label)
                if mapped is None:
                    unmapped[label] += 1
                    rejects.write(src, record.line, "unmapped_label",
                                  f"value {label!r} is not covered by --label-map {lmap.spec!r}", raw_label, raw_text)
                    continue
                label = mapped
            row_role = role if role is not None else splitting.UNASSIGNED
            if cols.split is not None:
                code = splitting.split_code(values.get(cols.split))
                if code is None:
                    rejects.write(src, record.line, "bad_split",
                                  f"column {cols.split!r} holds {values.get(cols.split)!r}; expected train, "
                                  "validation or test", raw_label, raw_text)
                    continue
                row_role = code
            hashes.append(splitting.text_hash(text, seed))
            if cols.group is not None:
                group = clean_label(values.get(cols.group))  # the same trimming as a label: ' 42 ' == '42'
                if group is None:  # a group of its own: keyed by its text, like the split without groups
                    groups.append(hashes[-1])
                else:
                    groups.append(splitting.group_hash(group, seed))
            label_ids.append(label_index.setdefault(label, len(label_index)))
            row_roles.append(row_role)
            batch["text"].append(text)
            batch["text_original"].append(raw_text)
            batch["label"].append(label)
            batch["source_file"].append(src)
            batch["source_line"].append(record.line)
            if len(batch["text"]) >= batch_rows:
                flush()
                if progress:
                    progress(done_before + reader.bytes_read, total_bytes)
        flush()
        done_before += reader.bytes_total
        if progress:
            progress(done_before, total_bytes)
        entry: dict[str, Any] = {"path": source, "rows": file_rows,
                                 "role": None if role is None else SPLITS[role],
                                 "text_columns": cols.text, "label_column": cols.label, "split_column": cols.split,
                                 "group_column": cols.group}
        if isinstance(reader, FolderReader) and reader.skipped_folders:
            entry["skipped_unlabelled_folders"] = reader.skipped_folders
        inputs_report.append(entry)
    stage.close()

    h = np.asarray(hashes, dtype=np.uint64)
    lab = np.asarray(label_ids, dtype=np.int32)
    rol = np.asarray(row_roles, dtype=np.int8)
    del hashes, label_ids, row_roles
    reason, ref, dup_stats = _duplicates(h, lab, rol, drop_duplicates, drop_conflicts)
    names = {i: n for n, i in label_index.items()}
    keep = reason == 0
    final = np.full(len(h), splitting.UNASSIGNED, dtype=np.int8)
    group_stats = None
    if columns[0].group is not None:
        g = np.asarray(groups, dtype=np.uint64)
        final[keep] = splitting.assign_groups(h[keep], g[keep], lab[keep], rol[keep], fractions)
        group_stats = _group_stats(g, h, keep, final, columns[0].group)
    else:
        final[keep] = splitting.assign(h[keep], lab[keep], rol[keep], fractions)
    del groups
    rare = _rare_labels(lab, keep, final, min_examples, fractions, rol)
    for code in rare:
        reason[keep & (lab == code)] = _R_RARE if rare[code] == "rare_label" else _R_NOT_IN_TRAIN
    keep = reason == 0

    ws_rejects, dataset_tmp = tmpdir / "rejects.csv", tmpdir / "dataset.parquet"
    lengths_chars, lengths_words = _write_dataset(stage_path, dataset_tmp, keep, final, reason, ref, lab, names,
                                                  rare, min_examples, rejects, batch_rows, pa, pq)
    rejects.close()

    kept_labels = sorted({names[i] for i in np.unique(lab[keep])}) if keep.any() else []
    labels = class_order(kept_labels)
    if not labels:
        raise ValidationError(
            f"No usable rows: all {rows_read} row(s) were rejected ({_reason_summary(rejects.counts)}). "
            f"See the rejects written to {ws_rejects.name} in a failed run; fix the input and run ingest again."
        ) if rows_read else ValidationError("The input holds no rows: add at least a header and labelled rows.")
    if len(labels) < 2:
        raise ValidationError(
            f"Only one label is left after validation ({labels[0]!r}); a classifier needs at least two. "
            "Check --label-col (and --label-map), or add examples of the other classes."
        )
    report = _report(inputs_report, rows_read, keep, final, lab, names, labels, rejects.counts, dup_stats,
                     unmapped, lengths_chars, lengths_words, seed, fractions, lmap, encoding, drop_duplicates,
                     min_examples, rol, rare, group_stats)
    # Publish: drop the old dataset first, so a crash in between never pairs a new report with old rows.
    ws.dataset.unlink(missing_ok=True)
    os.replace(ws_rejects, ws.rejects)
    write_json_atomic(ws.report, report)
    os.replace(dataset_tmp, ws.dataset)
    return IngestResult(ws.root, ws.dataset, ws.report, ws.rejects, report)


_R_DUP, _R_CONFLICT, _R_RARE, _R_NOT_IN_TRAIN = 1, 2, 3, 4
_REASON_CODES = {_R_DUP: "duplicate", _R_CONFLICT: "conflicting_labels", _R_RARE: "rare_label",
                 _R_NOT_IN_TRAIN: "label_not_in_train"}


def _duplicates(h: np.ndarray, lab: np.ndarray, roles: np.ndarray, drop_duplicates: bool,
                drop_conflicts: bool) -> tuple[np.ndarray, np.ndarray, dict]:
    """Per row: a reject code (0 = keep) and the index of the first row with the same text (or -1).

    Repeated texts are counted and kept unless ``drop_duplicates``; texts seen with different
    labels are flagged in the report and kept unless ``drop_conflicts``.
    """
    reason = np.zeros(len(h), dtype=np.int8)
    ref = np.full(len(h), -1, dtype=np.int64)
    stats = {"duplicate_rows": 0, "duplicate_texts": 0, "conflicting_texts": 0, "conflicting_rows": 0,
             "cross_split_duplicate_rows": 0, "duplicates_dropped": drop_duplicates,
             "conflicts_dropped": drop_conflicts}
    if len(h) == 0:
        return reason, ref, stats
    uniq, first, inverse, counts = np.unique(h, return_index=True, return_inverse=True, return_counts=True)
    # Distinct labels per text: unique (text, label) pairs counted per text.
    pair = np.unique(np.stack([inverse.astype(np.int64), lab.astype(np.int64)], axis=1), axis=0)
    nlabels = np.bincount(pair[:, 0], minlength=len(uniq))
    conflicted = nlabels[inverse] > 1
    first_row = first[inverse]
    ref[:] = np.where(first_row != np.arange(len(h)), first_row, -1)
    repeated = ref >= 0
    fixed = roles != -1
    cross = repeated & fixed & (roles != roles[np.maximum(ref, 0)])
    if drop_conflicts:
        reason[conflicted] = _R_CONFLICT
    if drop_duplicates:
        reason[repeated & (reason == 0)] = _R_DUP
    stats.update({
        "duplicate_rows": int((repeated & ~conflicted).sum()),
        "duplicate_texts": int(((counts > 1) & (nlabels == 1)).sum()),
        "conflicting_texts": int((nlabels > 1).sum()),
        "conflicting_rows": int(conflicted.sum()),
        "cross_split_duplicate_rows": int(cross.sum()),
    })
    return reason, ref, stats


def _rare_labels(lab: np.ndarray, keep: np.ndarray, final: np.ndarray, min_examples: int,
                 fractions: tuple[float, float, float], roles: np.ndarray) -> dict[int, str]:
    """Labels to reject: too few rows to split, or absent from the training split."""
    out: dict[int, str] = {}
    for code in np.unique(lab[keep]):
        mask = keep & (lab == code)
        if (roles[mask] == splitting.UNASSIGNED).all() and mask.sum() < min_examples:
            out[int(code)] = "rare_label"
        elif not (final[mask] == splitting.TRAIN).any():
            out[int(code)] = "label_not_in_train"
    return out


def _write_dataset(stage_path: Path, out_path: Path, keep: np.ndarray, final: np.ndarray, reason: np.ndarray,
                   ref: np.ndarray, lab: np.ndarray, names: dict[int, str], rare: dict[int, str],
                   min_examples: int, rejects: _RejectWriter, batch_rows: int, pa: Any, pq: Any
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Pass 2: stream the staged rows into the dataset, and the late rejects into the rejects file."""
    schema = pa.schema([("text", pa.string()), ("text_original", pa.string()), ("label", pa.string()),
                        ("split", pa.string()), ("source_file", pa.string()), ("source_line", pa.int64())])
    writer = pq.ParquetWriter(out_path, schema, compression="zstd")
    chars = np.zeros(int(keep.sum()), dtype=np.int64)
    words = np.zeros(int(keep.sum()), dtype=np.int64)
    where: dict[int, tuple[str, int]] = {}
    need_where = set(ref[reason == _R_DUP].tolist()) | set(np.flatnonzero(reason == _R_CONFLICT).tolist())
    conflict_labels: dict[int, list[str]] = {}
    offset = 0
    kept_at = 0
    split_names = np.array(SPLITS + ("",), dtype=object)
    for batch in iter_parquet_batches(stage_path, batch_rows):
        cols = batch.to_pydict()
        n = batch.num_rows
        rows = np.arange(offset, offset + n)
        for i in rows:
            if int(i) in need_where:
                j = int(i) - offset
                where[int(i)] = (cols["source_file"][j], cols["source_line"][j])
        k = keep[rows]
        idx = np.flatnonzero(k)
        if len(idx):
            texts = [cols["text"][j] for j in idx]
            table = pa.table({
                "text": texts,
                "text_original": [cols["text_original"][j] for j in idx],
                "label": [cols["label"][j] for j in idx],
                "split": split_names[final[rows[idx]]].tolist(),
                "source_file": [cols["source_file"][j] for j in idx],
                "source_line": [cols["source_line"][j] for j in idx],
            }, schema=schema)
            writer.write_table(table)
            pa.default_memory_pool().release_unused()
            chars[kept_at:kept_at + len(idx)] = [len(t) for t in texts]
            words[kept_at:kept_at + len(idx)] = [t.count(" ") + 1 for t in texts]
            kept_at += len(idx)
        offset += n
    writer.close()
    # Late rejects need the location of the row each one duplicates, so they go in a second sweep.
    conflict_rows = np.flatnonzero(reason == _R_CONFLICT)
    for i in conflict_rows:
        conflict_labels.setdefault(int(ref[i]) if ref[i] >= 0 else int(i), []).append(names[int(lab[i])])
    offset = 0
    for batch in iter_parquet_batches(stage_path, batch_rows):
        n = batch.num_rows
        r = reason[offset:offset + n]
        idx = np.flatnonzero(r)
        if len(idx):
            cols = batch.select(["text_original", "label", "source_file", "source_line"]).to_pydict()
            for j in idx:
                i = offset + int(j)
                code = int(r[j])
                if code == _R_DUP:
                    f, line = where[int(ref[i])]
                    detail = f"same text as {f}:{line}"
                elif code == _R_CONFLICT:
                    head = int(ref[i]) if ref[i] >= 0 else i
                    f, line = where[head]
                    distinct = sorted(set(conflict_labels[head]))
                    detail = f"labelled {' / '.join(map(repr, distinct))} across rows; first at {f}:{line}"
                elif code == _R_RARE:
                    count = int((lab == lab[i]).sum())
                    detail = (f"label {names[int(lab[i])]!r} has {count} example(s) after validation; "
                              f"at least {min_examples} are needed to split it (add examples, or merge classes "
                              "with --label-map)")
                else:
                    detail = f"label {names[int(lab[i])]!r} occurs only in validation/test inputs"
                rejects.write(cols["source_file"][j], cols["source_line"][j], _REASON_CODES[code], detail,
                              cols["label"][j], cols["text_original"][j])
        offset += n
    return chars, words


def _group_stats(groups: np.ndarray, hashes: np.ndarray, keep: np.ndarray, final: np.ndarray,
                 column: str) -> dict[str, Any]:
    """How many groups the kept rows form, how many kept rows lack a group, how many groups span two splits."""
    grouped = keep & (groups != hashes)  # a row without a group was given its text hash as its group
    pairs = np.unique(np.stack([groups[grouped], final[grouped].astype(np.uint64)], axis=1), axis=0)
    distinct, per_group = np.unique(pairs[:, 0], return_counts=True)
    return {"column": column, "groups": int(len(distinct)), "rows_without_group": int((keep & ~grouped).sum()),
            "groups_across_splits": int((per_group > 1).sum())}


def _percentiles(values: np.ndarray) -> dict[str, int]:
    if len(values) == 0:
        return {}
    qs = np.percentile(values, [5, 25, 50, 75, 95, 99])
    return {"min": int(values.min()), "p5": int(qs[0]), "p25": int(qs[1]), "p50": int(qs[2]),
            "p75": int(qs[3]), "p95": int(qs[4]), "p99": int(qs[5]), "max": int(values.max()),
            "mean": round(float(values.mean()), 1)}


def _warnings(labels: list[str], per_split: dict[str, dict[str, int]], dup_stats: dict,
              group_stats: dict[str, Any] | None = None) -> list[str]:
    """Things that are legal but probably a mistake, for the report and the terminal."""
    out = []
    by_fold: dict[str, list[str]] = {}
    for label in labels:
        by_fold.setdefault(label.casefold(), []).append(label)
    for group in by_fold.values():
        if len(group) > 1:
            out.append(f"labels {' / '.join(map(repr, group))} differ only in case and are different classes; "
                       "map them together with --label-map if they mean the same")
    if len(labels) > 100:
        out.append(f"{len(labels)} distinct labels: is --label-col the right column? A numeric rating can be "
                   "grouped with --label-map '1-2=negative,4-5=positive'")
    few = [label for label in labels if per_split["train"][label] < 10]
    if few and len(labels) <= 100:
        shown = ", ".join(f"{label!r} ({per_split['train'][label]})" for label in few[:10])
        out.append(f"label(s) with fewer than 10 training examples: {shown}; the model will hardly learn them")
    if dup_stats.get("conflicting_texts") and not dup_stats.get("conflicts_dropped"):
        out.append(f"{dup_stats['conflicting_texts']:,} text(s) carry different labels in "
                   f"{dup_stats['conflicting_rows']:,} row(s); pass --drop-conflicts to reject them")
    if dup_stats.get("cross_split_duplicate_rows"):
        out.append(f"{dup_stats['cross_split_duplicate_rows']:,} repeated text(s) fall in another split than their "
                   "first occurrence (the input files or split column put them there); test scores may be optimistic")
    if group_stats and group_stats["rows_without_group"]:
        out.append(f"{group_stats['rows_without_group']} row(s) have no value in group column "
                   f"{group_stats['column']!r}; each was split as a group of its own (with its duplicates).")
    if group_stats and group_stats["groups_across_splits"]:
        out.append(f"{group_stats['groups_across_splits']} group(s) of column {group_stats['column']!r} have rows "
                   "in more than one split: the input files or split column put them there, or a text they "
                   "share with another group did.")
    return out


def _reason_summary(counts: Counter[str]) -> str:
    return ", ".join(f"{n} {r}" for r, n in counts.most_common()) or "none"


def _report(inputs: list[dict], rows_read: int, keep: np.ndarray, final: np.ndarray, lab: np.ndarray,
            names: dict[int, str], labels: list[str], reject_counts: Counter[str], dup_stats: dict,
            unmapped: Counter[str], chars: np.ndarray, words: np.ndarray, seed: int,
            fractions: tuple[float, float, float], lmap: LabelMap | None, encoding: str,
            drop_duplicates: bool, min_examples: int, roles: np.ndarray, rare: dict[int, str],
            group_stats: dict[str, Any] | None = None) -> dict[str, Any]:
    kept = int(keep.sum())
    rejected = int(sum(reject_counts.values()))
    assert rows_read == kept + rejected, f"row accounting broken: {rows_read} != {kept} + {rejected}"
    per_split: dict[str, dict[str, int]] = {}
    for code, name in enumerate(SPLITS):
        mask = keep & (final == code)
        counts = Counter(names[int(i)] for i in lab[mask])
        per_split[name] = {label: int(counts.get(label, 0)) for label in labels}
    if (roles != splitting.UNASSIGNED).any():
        source = "files" if any(i["role"] for i in inputs) else "column"
    else:
        source = "hash"
    return {
        "format_version": 1,
        "warnings": _warnings(labels, per_split, dup_stats, group_stats),
        "rows": {"read": rows_read, "kept": kept, "rejected": rejected},
        "rejected_by_reason": dict(reject_counts.most_common()),
        "labels": labels,
        "label_counts": {label: sum(per_split[s][label] for s in SPLITS) for label in labels},
        "splits": per_split,
        "split_sizes": {s: sum(per_split[s].values()) for s in SPLITS},
        "split_source": source,
        "groups": group_stats,
        "text_length_chars": _percentiles(chars),
        "text_length_words": _percentiles(words),
        "duplicates": dup_stats,
        "unmapped_label_values": dict(unmapped.most_common()),
        "inputs": inputs,
        "settings": {
            "seed": seed, "split_fractions": list(fractions), "encoding": encoding,
            "label_map": lmap.as_dict() if lmap else None, "drop_duplicates": drop_duplicates,
            "min_examples_per_label": min_examples, "normalization_version": NORMALIZATION_VERSION,
        },
    }


# --------------------------------------------------------------------------- other readers


def read_labelled_table(path: str | os.PathLike, *, text_col: str | Sequence[str] | None = None,
                        label_col: str | None = None, label_map: str | None = None,
                        encoding: str = DEFAULTS.encoding, delimiter: str | None = None) -> "Any":
    """Read a labelled file into a DataFrame (text, label, source_line), normalised as ingest does.

    Rows without text or label are not returned; they are counted in ``df.attrs["rejected"]``
    (reason -> count) so a caller can report them.
    """
    import pandas as pd

    reader = open_table(path, encoding=encoding, delimiter=delimiter)
    cols = _resolve_columns(reader, _split_names(text_col), label_col, None, need_label=True)
    lmap = LabelMap(label_map) if label_map else None
    texts, labels, lines = [], [], []
    rejected: Counter[str] = Counter()
    for record in reader:
        if record.values is None:
            rejected["malformed_row"] += 1
            continue
        text = normalize_text(join_text(record.values, cols.text)[0])
        label = clean_label(record.values.get(cols.label))  # type: ignore[arg-type]
        if label is not None and lmap is not None:
            label = lmap.map(label)
            if label is None:
                rejected["unmapped_label"] += 1
                continue
        if not text:
            rejected["empty_text"] += 1
            continue
        if label is None:
            rejected["missing_label"] += 1
            continue
        texts.append(text)
        labels.append(label)
        lines.append(record.line)
    df = pd.DataFrame({"text": texts, "label": labels, "source_line": lines})
    df.attrs["rejected"] = dict(rejected)
    df.attrs["text_columns"] = cols.text
    df.attrs["label_column"] = cols.label
    return df

