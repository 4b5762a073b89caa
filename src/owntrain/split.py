"""Deterministic, stratified train / validation / test assignment.

Each kept row carries a seeded 64-bit hash of its normalised text (BLAKE2b, the same on every
machine). Within each label the distinct texts are ranked by that hash and cut at the requested
fractions, so the split is exactly stratified, reproducible from input and seed alone, and
duplicates (same text, same hash) always land in the same split.
"""

from __future__ import annotations

import hashlib

import numpy as np

from owntrain.config import SPLITS

TRAIN, VALIDATION, TEST, UNASSIGNED = 0, 1, 2, -1
SPLIT_ALIASES = {
    "train": TRAIN, "training": TRAIN, "trn": TRAIN,
    "validation": VALIDATION, "valid": VALIDATION, "val": VALIDATION, "dev": VALIDATION, "development": VALIDATION,
    "test": TEST, "testing": TEST, "tst": TEST, "eval": TEST,
}


def text_hash(text: str, seed: int) -> int:
    """Seeded 64-bit hash of a text, identical in every process and on every machine."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8,
                             key=str(seed).encode()).digest()
    return int.from_bytes(digest, "little")


def split_code(value: object) -> int | None:
    """The split a value names ('train', 'dev', 'Test', ...), or None when it names none."""
    if value is None:
        return None
    return SPLIT_ALIASES.get(str(value).strip().lower())


def role_from_filename(name: str) -> int | None:
    """A file's role from its name: ``train.csv`` -> train, ``reviews_dev.tsv`` -> validation."""
    stem = name.lower().split(".")[0]
    for token in stem.replace("-", "_").split("_")[::-1]:
        if token in SPLIT_ALIASES:
            return SPLIT_ALIASES[token]
    return SPLIT_ALIASES.get(stem)


def _cut(n: int, fractions: tuple[float, float, float]) -> tuple[int, int]:
    """Sizes (validation, test) for n distinct texts; each non-zero fraction gets at least one."""
    val = int(round(n * fractions[1])) if fractions[1] > 0 else 0
    test = int(round(n * fractions[2])) if fractions[2] > 0 else 0
    if fractions[1] > 0:
        val = max(val, 1)
    if fractions[2] > 0:
        test = max(test, 1)
    while val + test >= n and (val or test):  # keep at least one text for training
        if val >= test and val:
            val -= 1
        else:
            test -= 1
    return val, test


def assign(hashes: np.ndarray, labels: np.ndarray, roles: np.ndarray,
           fractions: tuple[float, float, float]) -> np.ndarray:
    """Final split code for each row.

    ``roles`` holds a split already fixed by a split column or a file's role, or UNASSIGNED.
    Unassigned rows are split by ``fractions``. Splits that no row was given (e.g. no validation
    file) are carved out of the rows given to train, in proportion to the fractions.
    """
    out = roles.astype(np.int8).copy()
    present = {int(r) for r in np.unique(roles) if r != UNASSIGNED}
    pools: list[tuple[np.ndarray, tuple[float, float, float]]] = []
    pools.append((roles == UNASSIGNED, fractions))
    if present and TRAIN in present:
        missing_val = VALIDATION not in present
        missing_test = TEST not in present
        if missing_val or missing_test:
            ftr, fv, ft = fractions
            rel = (ftr, fv if missing_val else 0.0, ft if missing_test else 0.0)
            total = sum(rel)
            pools.append((roles == TRAIN, tuple(f / total for f in rel)))  # type: ignore[arg-type]
    for mask, fr in pools:
        for label in np.unique(labels[mask]):
            idx = np.flatnonzero(mask & (labels == label))
            uniq, inverse = np.unique(hashes[idx], return_inverse=True)  # sorted by hash
            val, test = _cut(len(uniq), fr)
            train = len(uniq) - val - test
            rank_split = np.full(len(uniq), TRAIN, dtype=np.int8)
            rank_split[train:train + val] = VALIDATION
            rank_split[train + val:] = TEST
            out[idx] = rank_split[inverse]
    return out


def split_name(code: int) -> str:
    return SPLITS[code]
