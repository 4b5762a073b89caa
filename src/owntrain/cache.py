"""Encoded splits and fit's encoder, cached under ``<workspace>/cache/`` between fits.

Tokenizing is the slow part of preparing a fit (spaCy on tens of thousands of texts takes
minutes); the ids it gives depend only on the encoding settings, the encoder and the dataset. So
fit keeps, per split, the encoded sequences in ``encoded-<key>-<split>.npz`` (a flat int32 array of
all ids plus int64 row offsets: compact, read without pickles) and its encoder in
``vocab-<key>.json`` (the file :func:`owntrain.encoding.workspace_encoder` reads and writes too,
so ``owntrain vocab`` and fit share one vocabulary per dataset and settings). A second fit of the
same data and settings (another ``--arch``, ``--epochs``, seed...) then tokenizes nothing.

The keys hash everything that decides the content: for sequences, the whole
``EncodingSettings.to_dict()`` (so a new setting joins the key by itself), the SHA-256 of the
encoder's JSON and the dataset's SHA-256; for the encoder, ``EncodingSettings.encoder_key()`` and
the dataset's SHA-256. Files are written under a temporary name and renamed; a file that cannot be
read or does not check out is ignored (and rewritten by the caller), never trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from owntrain.errors import OwntrainError

if TYPE_CHECKING:  # pragma: no cover
    from owntrain.encoding import Encoder, EncodingSettings
    from owntrain.workspace import Workspace

CACHE_FORMAT = 1


def _digest(obj: Any, n: int = 24) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()[:n]


def encoder_sha256(encoder: "Encoder") -> str:
    """SHA-256 of the encoder's canonical JSON: two encoders with the same ids hash the same."""
    from owntrain.encoding import encoder_to_dict

    return _digest(encoder_to_dict(encoder), 64)


def encoder_path(ws: "Workspace", settings: "EncodingSettings", dataset_sha: str) -> Path:
    """Where the encoder built from this dataset's training split with these settings is cached."""
    key = _digest({"format": CACHE_FORMAT, "encoder": settings.encoder_key(), "dataset_sha256": dataset_sha})
    return ws.cache / f"vocab-{key}.json"


def read_encoder(path: Path) -> "Encoder | None":
    """The cached encoder, or None when the file is missing or damaged."""
    from owntrain.encoding import encoder_from_dict

    try:
        return encoder_from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError, OwntrainError):
        return None


def write_encoder(path: Path, encoder: "Encoder") -> None:
    from owntrain.encoding import encoder_to_dict
    from owntrain.workspace import write_json_atomic

    write_json_atomic(path, encoder_to_dict(encoder))


def encoded_path(ws: "Workspace", settings: "EncodingSettings", encoder: "Encoder", dataset_sha: str,
                 split: str) -> Path:
    """Where the encoded sequences of ``split`` are cached for these settings, encoder and dataset."""
    key = _digest({"format": CACHE_FORMAT, "encoding": settings.to_dict(), "encoder_sha256": encoder_sha256(encoder),
                   "dataset_sha256": dataset_sha})
    return ws.cache / f"encoded-{key}-{split}.npz"


def write_encoded(path: Path, seqs: Sequence[np.ndarray]) -> None:
    """Save sequences as one flat int32 array and ``len(seqs) + 1`` offsets, atomically."""
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate([np.asarray(s, dtype=np.int32) for s in seqs]) if len(seqs) else np.zeros(0, np.int32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, ids=flat.astype(np.int32, copy=False), offsets=offsets)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_encoded(path: Path, *, n_rows: int, id_limit: int, max_len: int) -> list[np.ndarray] | None:
    """The cached sequences, or None when the file is missing, damaged or does not fit.

    Checks what a damaged or foreign file would get wrong: the row count, offsets that rise from 0
    to the number of ids, no sequence longer than ``max_len`` and every id in ``0 .. id_limit-1``.
    """
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            flat, offsets = z["ids"], z["offsets"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile):
        return None
    if (flat.ndim != 1 or flat.dtype != np.int32 or offsets.ndim != 1 or offsets.dtype != np.int64
            or len(offsets) != n_rows + 1 or offsets[0] != 0 or offsets[-1] != len(flat)):
        return None
    lengths = np.diff(offsets)
    if len(lengths) and (lengths.min() < 0 or lengths.max() > max_len):
        return None
    if len(flat) and (flat.min() < 0 or flat.max() >= id_limit):
        return None
    return np.split(flat, offsets[1:-1]) if n_rows else []
