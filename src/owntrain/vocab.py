"""Token ids: the vocabulary convention of ``keras.datasets.imdb``, a stable hashing encoder, padding.

========  ===========================================================================
id        meaning
========  ===========================================================================
0         padding (:data:`PAD`)
1         start of sequence, prepended to every text (:data:`START`)
2         unknown / out of vocabulary, also every token ranked at or beyond ``top_words``
3         reserved, never produced (Keras' ``index_from=3`` leaves it unused)
4, 5 ...  tokens by descending frequency in the training documents; 4 is the most frequent
========  ===========================================================================

A Keras user gets the same ids from ``keras.datasets.imdb.load_data(num_words=top_words)`` as
from ``Vocabulary.build(docs, top_words=top_words, min_df=1)`` on the same tokens. Nothing here
imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from owntrain.config import DEFAULTS
from owntrain.errors import InputError

PAD = 0
START = 1
UNK = 2
RESERVED = 3
INDEX_FROM = 4
"""The first id a real token gets (Keras' ``index_from=3`` plus the 1-based word rank)."""

SPECIAL_TOKENS: tuple[str, ...] = ("<PAD>", "<START>", "<UNK>", "<RESERVED>")
FORMAT_VERSION = 1


def _check_int(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int of at least ``minimum``, or an InputError saying what to pass."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be a whole number of at least {minimum}, got {value!r}.")
    return int(value)


def _special_or_error(i: int, size: int) -> str:
    """The name of a reserved id, or an InputError for an id outside ``0 .. size-1``."""
    if 0 <= i < INDEX_FROM:
        return SPECIAL_TOKENS[i]
    raise InputError(
        f"Id {i} is outside this encoder's ids 0..{size - 1}. Decode ids produced by the same "
        "vocabulary (or bundle) that encoded them."
    )


class Vocabulary:
    """Tokens and their ids, by descending training frequency; build with :meth:`build`."""

    kind = "vocab"

    def __init__(
        self,
        tokens: Sequence[str],
        counts: Sequence[int],
        doc_counts: Sequence[int],
        *,
        top_words: int = DEFAULTS.top_words,
        min_df: int = DEFAULTS.min_df,
        n_docs: int = 0,
        n_types: int = 0,
    ) -> None:
        """Use :meth:`build` or :meth:`from_dict`; ``tokens[i]`` has id ``INDEX_FROM + i``."""
        self.top_words = _check_int("top_words", top_words, INDEX_FROM + 1)
        self.min_df = _check_int("min_df", min_df, 1)
        if not len(tokens) == len(counts) == len(doc_counts):
            raise InputError(
                f"A vocabulary needs as many counts as tokens, got {len(tokens)} tokens, "
                f"{len(counts)} counts and {len(doc_counts)} document counts. The vocabulary file is damaged."
            )
        if INDEX_FROM + len(tokens) > self.top_words:
            raise InputError(
                f"{len(tokens)} tokens do not fit in top_words={self.top_words} "
                f"(ids {INDEX_FROM}..{self.top_words - 1}). The vocabulary file is damaged."
            )
        self.tokens: list[str] = list(tokens)
        self.counts: list[int] = [int(c) for c in counts]
        self.doc_counts: list[int] = [int(c) for c in doc_counts]
        self.n_docs = int(n_docs)
        self.n_types = int(n_types)
        self._index = {token: INDEX_FROM + i for i, token in enumerate(self.tokens)}
        if len(self._index) != len(self.tokens):
            raise InputError("A vocabulary lists some token twice. The vocabulary file is damaged.")

    @classmethod
    def build(
        cls,
        docs: Iterable[list[str]],
        *,
        top_words: int = DEFAULTS.top_words,
        min_df: int = DEFAULTS.min_df,
    ) -> "Vocabulary":
        """Count tokens over ``docs`` (lists of tokens, one per training text) and rank them.

        A token enters only if it occurs in at least ``min_df`` documents. Tokens are ranked by
        descending total count, ties by the token string (code point order), so the result does
        not depend on the order of ``docs``. Only the ``top_words - 4`` best ranked are kept: every
        other token encodes to :data:`UNK`, as with Keras' ``num_words``.
        """
        top_words = _check_int("top_words", top_words, INDEX_FROM + 1)
        min_df = _check_int("min_df", min_df, 1)
        counts: Counter[str] = Counter()
        doc_counts: Counter[str] = Counter()
        n_docs = 0
        for doc in docs:
            counts.update(doc)
            doc_counts.update(set(doc))
            n_docs += 1
        eligible = [t for t, df in doc_counts.items() if df >= min_df]
        eligible.sort(key=lambda t: (-counts[t], t))
        kept = eligible[: top_words - INDEX_FROM]
        return cls(
            kept,
            [counts[t] for t in kept],
            [doc_counts[t] for t in kept],
            top_words=top_words,
            min_df=min_df,
            n_docs=n_docs,
            n_types=len(counts),
        )

    @property
    def size(self) -> int:
        """Number of possible ids (every id emitted is below it): the embedding's input dimension."""
        return INDEX_FROM + len(self.tokens)

    @property
    def n_tokens(self) -> int:
        """Number of real tokens in the vocabulary (ids 4 .. size-1)."""
        return len(self.tokens)

    @property
    def token_to_id(self) -> Mapping[str, int]:
        """Read-only mapping of each vocabulary token to its id."""
        return MappingProxyType(self._index)

    @property
    def token_counts(self) -> dict[str, int]:
        """Training count of each vocabulary token, in id order."""
        return dict(zip(self.tokens, self.counts))

    def top(self, n: int | None = None) -> list[tuple[int, str, int]]:
        """The ``n`` most frequent tokens (all when None) as ``(id, token, count)``."""
        end = len(self.tokens) if n is None else max(0, n)
        return [(INDEX_FROM + i, self.tokens[i], self.counts[i]) for i in range(min(end, len(self.tokens)))]

    def id_of(self, token: str) -> int:
        """The id of ``token``, :data:`UNK` when it is not in the vocabulary."""
        return self._index.get(token, UNK)

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """``[START]`` followed by each token's id (:data:`UNK` for unknown tokens)."""
        get = self._index.get
        return [START, *(get(t, UNK) for t in tokens)]

    def decode_tokens(self, ids: Iterable[int]) -> list[str]:
        """The token (or ``<PAD>``, ``<START>``, ``<UNK>``, ``<RESERVED>``) for each id."""
        out = []
        for raw in ids:
            i = int(raw)
            out.append(self.tokens[i - INDEX_FROM] if INDEX_FROM <= i < self.size else _special_or_error(i, self.size))
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Ids back to text, e.g. ``'<START> this film was just brilliant'``."""
        return " ".join(self.decode_tokens(ids))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in a bundle's ``vocab.json``."""
        return {
            "kind": self.kind,
            "format_version": FORMAT_VERSION,
            "index_from": INDEX_FROM,
            "top_words": self.top_words,
            "min_df": self.min_df,
            "n_docs": self.n_docs,
            "n_types": self.n_types,
            "tokens": self.tokens,
            "counts": self.counts,
            "doc_counts": self.doc_counts,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Vocabulary":
        """Inverse of :meth:`to_dict`; raises InputError for anything else."""
        _check_header(d, cls.kind)
        if d.get("index_from", INDEX_FROM) != INDEX_FROM:
            raise InputError(f"This vocabulary numbers tokens from {d.get('index_from')}, owntrain from {INDEX_FROM}.")
        try:
            return cls(
                d["tokens"], d["counts"], d["doc_counts"],
                top_words=d["top_words"], min_df=d["min_df"], n_docs=d.get("n_docs", 0), n_types=d.get("n_types", 0),
            )
        except (KeyError, TypeError) as exc:
            raise InputError(f"The vocabulary data lacks or garbles {exc}. Rebuild it with `owntrain fit`.") from None

    def save(self, path: str | os.PathLike) -> None:
        """Write as UTF-8 JSON (atomically: a killed process never leaves half a file)."""
        from owntrain.workspace import write_json_atomic

        write_json_atomic(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        """Read a file written by :meth:`save`."""
        return cls.from_dict(read_json(Path(path)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Vocabulary(size={self.size}, top_words={self.top_words}, min_df={self.min_df}, n_docs={self.n_docs})"


def token_hash64(token: str) -> int:
    """The stable 64-bit hash of a token: BLAKE2b of its UTF-8, little-endian (``blake2b-64-le``).

    The same in every process and on every machine, unlike Python's ``hash()``. surrogatepass: a
    token holding a lone surrogate hashes too (valid text hashes as plain UTF-8).
    """
    return int.from_bytes(hashlib.blake2b(token.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


class HashEncoder:
    """Ids from a stable hash of each token: no stored vocabulary (the recipe's Keras ``one_hot``).

    A token's id is ``4 + blake2b_64(utf8(token)) % (buckets - 4)``: the same in every process and
    on every machine (unlike Python's ``hash()``, which Keras' ``one_hot`` uses), and never one of
    the reserved ids 0-3. Different tokens may share an id; there is no :data:`UNK`.
    """

    kind = "hash"
    HASH_NAME = "blake2b-64-le"
    _MEMO_LIMIT = 1_000_000

    def __init__(self, buckets: int = DEFAULTS.hash_buckets) -> None:
        self.buckets = _check_int("hash_buckets", buckets, INDEX_FROM + 1)
        self._memo: dict[str, int] = {}

    @property
    def size(self) -> int:
        """Number of possible ids (every id emitted is below it): the embedding's input dimension."""
        return self.buckets

    def id_of(self, token: str) -> int:
        """The id of one token, in ``4 .. buckets-1``."""
        i = self._memo.get(token)
        if i is None:
            i = INDEX_FROM + token_hash64(token) % (self.buckets - INDEX_FROM)
            if len(self._memo) >= self._MEMO_LIMIT:
                self._memo.clear()
            self._memo[token] = i
        return i

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """``[START]`` followed by each token's hashed id."""
        return [START, *(self.id_of(t) for t in tokens)]

    def decode_tokens(self, ids: Iterable[int]) -> list[str]:
        """``<h123>`` placeholders for hashed ids (a hash cannot be reversed), names for 0-3."""
        out = []
        for raw in ids:
            i = int(raw)
            out.append(f"<h{i}>" if INDEX_FROM <= i < self.buckets else _special_or_error(i, self.buckets))
        return out

    def decode(self, ids: Iterable[int]) -> str:
        """Ids back to placeholders, e.g. ``'<START> <h812> <h77>'``."""
        return " ".join(self.decode_tokens(ids))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as stored in a bundle's ``vocab.json``."""
        return {"kind": self.kind, "format_version": FORMAT_VERSION, "hash": self.HASH_NAME, "buckets": self.buckets}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "HashEncoder":
        """Inverse of :meth:`to_dict`."""
        _check_header(d, cls.kind)
        if d.get("hash") != cls.HASH_NAME:
            raise InputError(f"Unknown token hash {d.get('hash')!r}; this owntrain computes {cls.HASH_NAME!r}.")
        return cls(d.get("buckets"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HashEncoder) and other.buckets == self.buckets

    def __repr__(self) -> str:
        return f"HashEncoder(buckets={self.buckets})"


class BigramHasher:
    """Ids of a text's word bigrams from a stable hash: the fastText-style n-gram features.

    Bigram ``(a, b)`` gets ``offset + ((h(a) * M + h(b)) mod 2**64) % buckets``, where ``h`` is
    the 64-bit BLAKE2b of a token's UTF-8 (the same in every process and on every machine). No
    bigram or token string is stored: a bundle holds only one embedding row per bucket, so the
    training texts' word pairs cannot be read back from it. Different bigrams may share a bucket:
    IMDB's 1.3 million distinct training bigrams in 2**20 buckets (dim 16) gave 0.907 validation
    accuracy against 0.905 in 2**18 (dim 32); see bench/README.md.
    """

    HASH_NAME = "blake2b-64-le-pair"
    _MULT = np.uint64(0x9E3779B97F4A7C15)
    _MEMO_LIMIT = 2_000_000

    def __init__(self, buckets: int, offset: int) -> None:
        self.buckets = _check_int("ngram_buckets", buckets, 1)
        self.offset = _check_int("offset", offset, INDEX_FROM + 1)
        self._memo: dict[str, int] = {}

    def _token_hash(self, token: str) -> int:
        h = self._memo.get(token)
        if h is None:
            h = token_hash64(token)
            if len(self._memo) >= self._MEMO_LIMIT:
                self._memo.clear()
            self._memo[token] = h
        return h

    def ids(self, tokens: Sequence[str]) -> np.ndarray:
        """One id per adjacent token pair (``len(tokens) - 1`` of them), in order, as int32."""
        if len(tokens) < 2:
            return np.zeros(0, dtype=np.int32)
        h = np.fromiter((self._token_hash(t) for t in tokens), dtype=np.uint64, count=len(tokens))
        with np.errstate(over="ignore"):
            pair = h[:-1] * self._MULT + h[1:]
        return ((pair % np.uint64(self.buckets)).astype(np.int64) + self.offset).astype(np.int32)


def _check_header(d: Any, kind: str) -> None:
    """Refuse a dict that is not an encoder of ``kind`` in a format this owntrain reads."""
    if not isinstance(d, Mapping) or d.get("kind") != kind:
        found = d.get("kind") if isinstance(d, Mapping) else type(d).__name__
        raise InputError(f"Expected an owntrain encoder of kind {kind!r}, found {found!r}.")
    if d.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        raise InputError(
            f"This {kind} encoder has format version {d['format_version']}; this owntrain reads up to "
            f"{FORMAT_VERSION}. Upgrade owntrain."
        )


def read_json(path: Path) -> Any:
    """Parse a UTF-8 JSON file, with an InputError naming the file when it is missing or broken."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path} does not exist.") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"Cannot read {path} as JSON ({exc}). Rebuild it.") from None


def pad_sequences(
    seqs: Iterable[Sequence[int]],
    max_len: int | None = None,
    padding: str = DEFAULTS.padding,
    truncating: str = DEFAULTS.truncating,
    value: int = PAD,
    *,
    maxlen: int | None = None,
) -> np.ndarray:
    """A ``(len(seqs), max_len)`` int32 array, exactly as ``keras.utils.pad_sequences`` makes it.

    Sequences longer than ``max_len`` lose their start (``truncating='pre'``) or end (``'post'``);
    shorter ones get ``value`` before (``padding='pre'``) or after (``'post'``). ``max_len=None``
    uses the longest sequence; ``maxlen`` is accepted as Keras' spelling of ``max_len``. Note that
    with ``truncating='pre'`` a long text loses its START id, as in the Keras recipe.
    """
    if maxlen is not None:
        if max_len is not None and max_len != maxlen:
            raise InputError(f"Pass max_len or maxlen, not both (got {max_len} and {maxlen}).")
        max_len = maxlen
    if padding not in ("pre", "post"):
        raise InputError(f"padding must be 'pre' or 'post', got {padding!r}.")
    if truncating not in ("pre", "post"):
        raise InputError(f"truncating must be 'pre' or 'post', got {truncating!r}.")
    rows = [np.asarray(s, dtype=np.int32).reshape(-1) for s in seqs]
    if max_len is None:
        max_len = max((len(r) for r in rows), default=0)
    else:
        max_len = _check_int("max_len", max_len, 1)
    out = np.full((len(rows), max_len), value, dtype=np.int32)
    for i, row in enumerate(rows):
        if not len(row) or not max_len:
            continue
        kept = row[-max_len:] if truncating == "pre" else row[:max_len]
        if padding == "pre":
            out[i, max_len - len(kept):] = kept
        else:
            out[i, : len(kept)] = kept
    return out
