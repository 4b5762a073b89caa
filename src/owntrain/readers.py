"""Streaming readers for labelled (and unlabelled) tables.

Every reader yields :class:`Record` objects one at a time, so memory stays bounded whatever the
size of the input, and each record knows where it came from (file and line, or row for Parquet).
Supported: CSV (delimiter detected: ``,`` ``;`` tab ``|``), TSV, Parquet, JSON Lines, optionally
gzip-compressed, and a folder with one subfolder of ``.txt`` files per label (the ``aclImdb`` layout).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import os
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from owntrain.errors import EncodingError, InputError

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

SPLIT_FOLDER_NAMES = {"train", "training", "test", "testing", "validation", "valid", "val", "dev"}
UNLABELLED_FOLDER_NAMES = {"unsup", "unlabeled", "unlabelled"}


@dataclass
class Record:
    """One record of an input file: its values, or the problem that makes it unreadable."""

    line: int
    values: dict[str, Any] | None
    problem: str | None = None
    raw: str | None = None


class _CountingReader(io.RawIOBase):
    """A binary stream that counts the bytes read through it (for progress on large inputs)."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self._fh.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()


def python_encoding(encoding: str) -> str:
    """The codec to read with: UTF-8 always strips a leading byte-order mark."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise InputError(
            f"Unknown text encoding {encoding!r}. Pass an encoding Python knows, "
            "e.g. --encoding utf-8, latin-1, cp1252 or utf-16."
        ) from None
    return "utf-8-sig" if name in ("utf-8", "utf-8-sig") else name


def _open_binary(path: Path) -> BinaryIO:
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


_DAMAGED = (OSError, EOFError, zlib.error)
"""What reading a damaged or truncated file raises (a .gz cut short raises EOFError or zlib.error)."""


def _damaged_error(path: Path, line: int | None, exc: BaseException) -> InputError:
    where = f" after line {line}" if line else ""
    return InputError(f"{path}: cannot be read{where} ({exc}). The file is damaged or was copied incompletely "
                      "(a .gz file cut short?); copy it again.")


def _find_undecodable_line(path: Path, encoding: str) -> tuple[int, int, int]:
    """Return (line, column, byte) of the first byte sequence that cannot be decoded."""
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with _open_binary(path) as fh:
            for number, line in enumerate(fh, start=1):
                try:
                    decoder.decode(line)
                except UnicodeDecodeError as exc:
                    return number, exc.start + 1, line[exc.start]
    except _DAMAGED:
        pass
    return 0, 0, 0


def _encoding_error(path: Path, encoding: str) -> EncodingError:
    line, column, byte = _find_undecodable_line(path, encoding)
    where = f"line {line}, column {column} (byte 0x{byte:02x})" if line else "near the end of the file"
    other = "cp1252" if encoding.startswith("utf") else "utf-8"
    return EncodingError(
        f"{path}: {where} is not valid {encoding.replace('-sig', '')} text. "
        f"The file was probably saved in another encoding: pass --encoding latin-1 or --encoding {other} "
        "(Excel on Windows often writes cp1252)."
    )


def detect_format(path: Path) -> str:
    """'csv', 'tsv', 'parquet', 'jsonl' or 'folder', from the path; InputError if unsupported."""
    if path.is_dir():
        return "folder"
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    formats = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".parquet": "parquet", ".pq": "parquet",
               ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
    if ext in formats:
        return formats[ext]
    raise InputError(
        f"{path}: cannot tell the file format from its name. Supported: .csv, .tsv, .parquet, .jsonl "
        "(optionally .gz), or a folder with one subfolder of .txt files per label. Rename the file accordingly."
    )


class TableReader:
    """Base class: ``columns`` is known before iteration; ``bytes_read`` / ``bytes_total`` give progress."""

    path: Path
    columns: list[str]
    bytes_total: int = 0

    @property
    def bytes_read(self) -> int:
        return 0

    def __iter__(self) -> Iterator[Record]:  # pragma: no cover - abstract
        raise NotImplementedError


def _unique_names(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i, name in enumerate(names):
        name = (name or "").strip() or f"column_{i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 1
        out.append(name)
    return out


def _sniff_delimiter(sample: str) -> str:
    header = sample.splitlines()[0] if sample else ""
    counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else ","


class DelimitedReader(TableReader):
    """CSV or TSV through Python's csv module: exact line numbers, ragged rows reported, not fatal."""

    def __init__(self, path: Path, encoding: str, delimiter: str | None = None) -> None:
        self.path = path
        self.encoding = python_encoding(encoding)
        self.bytes_total = path.stat().st_size
        self._counter: _CountingReader | None = None
        fmt = detect_format(path)
        try:
            with _open_binary(path) as fh:
                raw = fh.read(65536)
        except _DAMAGED as exc:
            raise _damaged_error(path, None, exc) from None
        try:
            # Strict, so a file in another encoding (UTF-16, cp1252 in the header) is named as such rather
            # than read as garbled column names; a character cut at the end of the sample is held back.
            sample = codecs.getincrementaldecoder(self.encoding)().decode(raw, final=False)
        except UnicodeDecodeError:
            raise _encoding_error(path, self.encoding) from None
        if delimiter is None:
            delimiter = "\t" if fmt == "tsv" else _sniff_delimiter(sample)
        self.delimiter = delimiter
        try:
            header = next(csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter, strict=False), None)
        except csv.Error as exc:
            raise InputError(f"{path}: line 1: cannot read the header ({exc}).") from None
        if not sample.strip() or not header:
            raise InputError(f"{path} is empty: expected a header line with column names, then one row per text.")
        self.columns = _unique_names(header)

    @property
    def bytes_read(self) -> int:
        return self._counter.count if self._counter else 0

    def __iter__(self) -> Iterator[Record]:
        self._counter = _CountingReader(_open_binary(self.path))
        text = io.TextIOWrapper(io.BufferedReader(self._counter, 1 << 20), encoding=self.encoding, newline="")
        reader = csv.reader(text, delimiter=self.delimiter, strict=False)
        ncols = len(self.columns)
        try:
            next(reader)  # header
            last = reader.line_num
            for row in reader:
                start, last = last + 1, reader.line_num
                if not row or (len(row) == 1 and row[0] == "" and ncols > 1):
                    continue  # blank line: not a row
                if len(row) != ncols:
                    yield Record(start, None, f"wrong number of fields: expected {ncols}, found {len(row)}",
                                 self.delimiter.join(row))
                    continue
                yield Record(start, dict(zip(self.columns, row)))
        except UnicodeDecodeError:
            raise _encoding_error(self.path, self.encoding) from None
        except _DAMAGED as exc:
            raise _damaged_error(self.path, reader.line_num, exc) from None
        except csv.Error as exc:
            raise InputError(f"{self.path}: line {reader.line_num}: cannot parse CSV ({exc}).") from None
        finally:
            text.close()


class JsonLinesReader(TableReader):
    """One JSON object per line; a line that is not an object is reported as a problem."""

    def __init__(self, path: Path, encoding: str) -> None:
        self.path = path
        self.encoding = python_encoding(encoding)
        self.bytes_total = path.stat().st_size
        self._counter: _CountingReader | None = None
        keys: dict[str, None] = {}
        for record in self._records(limit=1000):
            if record.values:
                keys.update(dict.fromkeys(record.values))
        if not keys:
            raise InputError(f"{path} holds no JSON objects: expected one object per line, "
                             'such as {"text": "...", "label": "..."}.')
        self.columns = list(keys)

    @property
    def bytes_read(self) -> int:
        return self._counter.count if self._counter else 0

    def _records(self, limit: int | None = None) -> Iterator[Record]:
        self._counter = _CountingReader(_open_binary(self.path))
        text = io.TextIOWrapper(io.BufferedReader(self._counter, 1 << 20), encoding=self.encoding)
        number = 0
        try:
            for number, line in enumerate(text, start=1):
                if limit is not None and number > limit:
                    break
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except ValueError as exc:
                    yield Record(number, None, f"invalid JSON ({exc.msg} at column {getattr(exc, 'colno', '?')})",
                                 line.rstrip("\r\n"))
                    continue
                if not isinstance(obj, dict):
                    yield Record(number, None, "not a JSON object", line.rstrip("\r\n"))
                    continue
                yield Record(number, obj)
        except UnicodeDecodeError:
            raise _encoding_error(self.path, self.encoding) from None
        except _DAMAGED as exc:
            raise _damaged_error(self.path, number, exc) from None
        finally:
            text.close()

    def __iter__(self) -> Iterator[Record]:
        for record in self._records():
            if record.values is not None:
                record.values = {c: record.values.get(c) for c in self.columns} | record.values
            yield record


def iter_parquet_batches(path: Path | Any, batch_rows: int, columns: list[str] | None = None) -> Iterator[Any]:
    """Record batches of a Parquet file with memory bounded by one row group.

    ``ParquetFile.iter_batches`` over a whole file keeps memory that grows with the file (measured:
    900 MB RSS after streaming a 1 GB file); reading one row group at a time and handing freed
    pages back to the allocator keeps it flat (130 MB for the same file).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = path if isinstance(path, pq.ParquetFile) else pq.ParquetFile(path)
    pool = pa.default_memory_pool()
    for group in range(file.num_row_groups):
        for batch in file.iter_batches(batch_size=batch_rows, row_groups=[group], columns=columns,
                                       use_threads=False):
            yield batch
            del batch
            pool.release_unused()


class ParquetReader(TableReader):
    """Parquet in record batches; the 'line' of a record is its 1-based row number."""

    def __init__(self, path: Path, batch_rows: int) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.batch_rows = batch_rows
        try:
            self._file = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
            raise InputError(f"{path} is not a readable Parquet file ({exc}).") from None
        self.columns = list(self._file.schema_arrow.names)
        self.bytes_total = max(self._file.metadata.num_rows, 1)
        self._rows = 0

    @property
    def bytes_read(self) -> int:  # rows stand in for bytes: progress is still a fraction
        return self._rows

    def __iter__(self) -> Iterator[Record]:
        row = 0
        for batch in iter_parquet_batches(self._file, self.batch_rows):
            for values in batch.to_pylist():
                row += 1
                yield Record(row, values)
            self._rows = row


class FolderReader(TableReader):
    """``DIR/<label>/*.txt`` or ``DIR/<split>/<label>/*.txt``; each file is one text.

    Virtual columns: ``text``, ``label`` and, for the second layout, ``split``. Folders of
    unlabelled texts (``unsup``) are skipped and listed in ``skipped_folders``.
    """

    def __init__(self, path: Path, encoding: str) -> None:
        self.path = path
        self.encoding = python_encoding(encoding)
        subdirs = sorted(p for p in path.iterdir() if p.is_dir())
        self.skipped_folders: list[str] = []
        by_split = bool(subdirs) and all(p.name.lower() in SPLIT_FOLDER_NAMES for p in subdirs)
        groups: list[tuple[str | None, Path]] = []
        for sub in subdirs:
            for labeldir in (sorted(p for p in sub.iterdir() if p.is_dir()) if by_split else [sub]):
                if labeldir.name.lower() in UNLABELLED_FOLDER_NAMES:
                    self.skipped_folders.append(str(labeldir))
                    continue
                groups.append((sub.name if by_split else None, labeldir))
        self._files = [(split, d.name, f) for split, d in groups for f in sorted(d.glob("*.txt"))]
        if not self._files:
            raise InputError(
                f"{path} is a folder without labelled .txt files. Expected one subfolder per label "
                "(pos/*.txt, neg/*.txt), optionally under train/ and test/ as in aclImdb."
            )
        self.columns = ["text", "label"] + (["split"] if by_split else [])
        self.bytes_total = len(self._files)
        self._done = 0

    @property
    def bytes_read(self) -> int:
        return self._done

    def __iter__(self) -> Iterator[Record]:
        for split, label, file in self._files:
            try:
                text = file.read_bytes().decode(self.encoding)
            except UnicodeDecodeError:
                raise _encoding_error(file, self.encoding) from None
            values = {"text": text, "label": label, "__source__": str(file)}
            if split is not None:
                values["split"] = split
            self._done += 1
            yield Record(1, values)


def open_table(path: str | os.PathLike, *, encoding: str = "utf-8", delimiter: str | None = None,
               batch_rows: int = 20_000) -> TableReader:
    """Open any supported input for streaming; InputError if it is missing or unsupported."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder. Check the path (relative to {Path.cwd()}).")
    fmt = detect_format(path)
    if fmt in ("csv", "tsv"):
        return DelimitedReader(path, encoding, delimiter)
    if fmt == "jsonl":
        return JsonLinesReader(path, encoding)
    if fmt == "parquet":
        return ParquetReader(path, batch_rows)
    return FolderReader(path, encoding)
