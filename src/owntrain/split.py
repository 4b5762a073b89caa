"""Deterministic, stratified train / validation / test assignment.

Each kept row carries a seeded 64-bit hash of its normalised text (BLAKE2b, the same on every
machine). Within each label the distinct texts are ranked by that hash and cut at the requested
fractions, so the split is exactly stratified, reproducible from input and seed alone, and
duplicates (same text, same hash) always land in the same split.

With a group column (``ingest --group-col``: a product, a customer, a film) the unit of the split is
a group instead of a text: rows that share a group, or share a text with a row of another group,
never straddle two splits, so validation and test hold groups that training never saw. Groups are
ranked by the seeded hash of their value within the label most of their rows carry and cut at the
fractions of rows; stratification is exact when every group holds one label and close otherwise.
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
    for mask, fr in _pools(roles, fractions):
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


def group_hash(value: str, seed: int) -> int:
    """Seeded 64-bit hash of a group value, in a namespace apart from :func:`text_hash`'s."""
    return text_hash("\x00group\x00" + value, seed)


def connected(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, the smallest row index of its component, rows linked by an equal ``a`` or an equal ``b``.

    Label propagation with pointer jumping: a few passes over the rows for any real data.
    """
    n = len(a)
    comp = np.arange(n, dtype=np.int64)
    if n == 0:
        return comp
    keys = [np.unique(k, return_inverse=True)[1].ravel() for k in (a, b)]
    while True:
        new = comp.copy()
        for inv in keys:
            low = np.full(int(inv.max()) + 1, n, dtype=np.int64)
            np.minimum.at(low, inv, comp)
            np.minimum(new, low[inv], out=new)
        while True:  # pointer jumping: a row's label becomes its label's label
            jumped = new[new]
            if np.array_equal(jumped, new):
                break
            new = jumped
        if np.array_equal(new, comp):
            return comp
        comp = new


def assign_groups(hashes: np.ndarray, groups: np.ndarray, labels: np.ndarray, roles: np.ndarray,
                  fractions: tuple[float, float, float]) -> np.ndarray:
    """Like :func:`assign`, with whole groups as the unit: rows of one group never straddle splits.

    ``groups`` holds each row's :func:`group_hash` (a row without a group is given its text hash, so it
    is a group of its own and its duplicates). Rows linked by a group or by a text form one unit; a
    unit is ranked by the smallest group hash among its rows and counted under the label most of its
    rows carry. Units in hash order fill train, then validation, then test, each to its share of that
    label's rows (:func:`_unit_cut`).
    """
    out = roles.astype(np.int8).copy()
    comp = connected(hashes, groups)
    unit_key = np.full(len(hashes), np.iinfo(np.uint64).max, dtype=np.uint64)
    np.minimum.at(unit_key, comp, groups.astype(np.uint64))
    for mask, fr in _pools(roles, fractions):
        idx = np.flatnonzero(mask)
        if len(idx) == 0:
            continue
        units, unit_of = np.unique(comp[idx], return_inverse=True)
        unit_of = unit_of.ravel()
        nlab = int(labels[idx].max()) + 1
        counts = np.zeros((len(units), nlab), dtype=np.int64)
        np.add.at(counts, (unit_of, labels[idx].astype(np.int64)), 1)
        major = counts.argmax(axis=1)
        sizes = counts.sum(axis=1)
        unit_split = np.full(len(units), TRAIN, dtype=np.int8)
        for label in np.unique(major):
            members = np.flatnonzero(major == label)
            members = members[np.argsort(unit_key[units[members]], kind="stable")]
            k_train, k_val = _unit_cut(sizes[members], fr)
            unit_split[members[k_train:k_train + k_val]] = VALIDATION
            unit_split[members[k_train + k_val:]] = TEST
        out[idx] = unit_split[unit_of]
    return out


def _unit_cut(sizes: np.ndarray, fractions: tuple[float, float, float]) -> tuple[int, int]:
    """How many of the units (rows ``sizes``, in hash order) go to train and to validation; the rest is test.

    A unit goes where its middle row falls on the row scale cut by :func:`_cut`. As there, a split with
    a non-zero fraction gets at least one unit while training keeps at least one.
    """
    n = int(sizes.sum())
    val, test = _cut(n, fractions)
    middle = np.cumsum(sizes) - sizes / 2
    k_train = int((middle < n - val - test).sum())
    k_val = int((middle < n - test).sum()) - k_train
    k_test = len(sizes) - k_train - k_val
    if k_train == 0:  # one unit larger than the whole training share: it still trains
        k_train = 1
        k_val, k_test = (k_val - 1, k_test) if k_val else (k_val, k_test - 1)
    if fractions[1] > 0 and k_val == 0 and k_train > 1:
        k_train, k_val = k_train - 1, 1
    if fractions[2] > 0 and k_test == 0:
        if k_val > 1:
            k_val, k_test = k_val - 1, 1
        elif k_train > 1:
            k_train, k_test = k_train - 1, 1
    return k_train, k_val


def _pools(roles: np.ndarray, fractions: tuple[float, float, float]) -> list[tuple[np.ndarray, tuple[float, float, float]]]:
    """The rows ingest splits, each with its fractions: unassigned rows, and train rows to carve from."""
    present = {int(r) for r in np.unique(roles) if r != UNASSIGNED}
    pools: list[tuple[np.ndarray, tuple[float, float, float]]] = [(roles == UNASSIGNED, fractions)]
    if present and TRAIN in present:
        missing_val = VALIDATION not in present
        missing_test = TEST not in present
        if missing_val or missing_test:
            ftr, fv, ft = fractions
            rel = (ftr, fv if missing_val else 0.0, ft if missing_test else 0.0)
            total = sum(rel)
            pools.append((roles == TRAIN, tuple(f / total for f in rel)))  # type: ignore[arg-type]
    return pools


def split_name(code: int) -> str:
    return SPLITS[code]
