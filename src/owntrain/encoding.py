"""From texts to the integer sequences a model sees: settings, encoder building, encoding, caching.

``EncodingSettings`` records everything that decides the ids of a text (tokenizer language,
casing, punctuation, vocabulary size, minimum document frequency, length and sides); a bundle stores
them (``preprocessing.json``) beside the encoder (``vocab.json``) so scoring reproduces training.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence, Union

import numpy as np

from owntrain.config import DEFAULTS
from owntrain.errors import InputError, WorkspaceError
from owntrain.fileio import sha256_file
from owntrain.text import TextSettings, tokenize
from owntrain.vocab import BigramHasher, HashEncoder, Vocabulary, _check_int, read_json

if TYPE_CHECKING:  # pragma: no cover
    from owntrain.workspace import Workspace

Encoder = Union[Vocabulary, HashEncoder]
ENCODERS: tuple[str, ...] = ("vocab", "hash")
SIDES: tuple[str, ...] = ("pre", "post")


@dataclass(frozen=True)
class EncodingSettings:
    """Everything that decides the ids of a text; saved with a model as ``preprocessing.json``."""

    text: TextSettings = field(default_factory=TextSettings)
    top_words: int = DEFAULTS.top_words
    min_df: int = DEFAULTS.min_df
    max_len: int = DEFAULTS.max_len
    padding: str = DEFAULTS.padding
    truncating: str = DEFAULTS.truncating
    encoder: str = DEFAULTS.encoder
    hash_buckets: int = DEFAULTS.hash_buckets
    ngram_buckets: int = 0
    """Hash buckets of the word-bigram ids appended after the token ids (0: none; the ngram arch)."""

    def __post_init__(self) -> None:
        if not isinstance(self.text, TextSettings):
            raise InputError(f"EncodingSettings.text must be a TextSettings, got {type(self.text).__name__}.")
        _check_int("top_words", self.top_words, 5)
        _check_int("min_df", self.min_df, 1)
        _check_int("max_len", self.max_len, 1)
        _check_int("hash_buckets", self.hash_buckets, 5)
        _check_int("ngram_buckets", self.ngram_buckets, 0)
        for name in ("padding", "truncating"):
            if getattr(self, name) not in SIDES:
                raise InputError(f"{name} must be 'pre' or 'post', got {getattr(self, name)!r}.")
        if self.encoder not in ENCODERS:
            raise InputError(f"encoder must be 'vocab' or 'hash', got {self.encoder!r}.")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict, with the text settings nested under ``text``."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["text"] = self.text.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "EncodingSettings":
        """Inverse of :meth:`to_dict`; missing keys take the defaults, unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise InputError(
                f"Unknown encoding setting(s): {', '.join(unknown)}. Expected only: {', '.join(sorted(names))}. "
                "The settings may come from a newer owntrain; upgrade owntrain or re-create them."
            )
        values = dict(d)
        if "text" in values:
            values["text"] = TextSettings.from_dict(values["text"])
        return cls(**values)

    @property
    def seq_len(self) -> int:
        """The longest encoded sequence: ``max_len`` ids, plus up to ``max_len - 1`` bigram ids."""
        return self.max_len + (self.max_len - 1 if self.ngram_buckets else 0)

    def input_dim(self, encoder: "Encoder") -> int:
        """Number of distinct ids (the embedding's rows): the encoder's, plus the bigram buckets."""
        return int(encoder.size) + int(self.ngram_buckets)

    def encoder_key(self) -> dict[str, Any]:
        """The settings that decide the encoder (not max_len or the padding sides)."""
        if self.encoder == "hash":
            return {"encoder": "hash", "hash_buckets": self.hash_buckets}
        return {"encoder": "vocab", "text": self.text.to_dict(), "top_words": self.top_words, "min_df": self.min_df}


def build_encoder(train_texts: Iterable[str], settings: EncodingSettings, *, n_process: int = 1) -> Encoder:
    """The encoder ``settings`` ask for: a Vocabulary of the training texts, or a HashEncoder.

    Pass the training split only. A hash encoder needs no texts and ignores them.
    """
    if settings.encoder == "hash":
        return HashEncoder(settings.hash_buckets)
    docs = tokenize(train_texts, settings.text, n_process=n_process)
    return Vocabulary.build(docs, top_words=settings.top_words, min_df=settings.min_df)


def build_and_encode(
    train_texts: Iterable[str], settings: EncodingSettings, *, n_process: int = 1
) -> tuple[Encoder, list[np.ndarray]]:
    """:func:`build_encoder` and :func:`encode_texts` of the same training texts, tokenizing once.

    Holds the training tokens in memory meanwhile (each distinct token string once, so about one
    pointer per token); use the two functions separately when that is too much.
    """
    if settings.encoder == "hash":
        encoder = HashEncoder(settings.hash_buckets)
        return encoder, encode_texts(train_texts, settings, encoder, n_process=n_process)
    interned: dict[str, str] = {}
    docs = [[interned.setdefault(t, t) for t in doc] for doc in tokenize(train_texts, settings.text, n_process=n_process)]
    vocab = Vocabulary.build(docs, top_words=settings.top_words, min_df=settings.min_df)
    encode = _sequence_encoder(settings, vocab)
    return vocab, [encode(doc) for doc in docs]


def truncate(ids: list[int], max_len: int, truncating: str = DEFAULTS.truncating) -> list[int]:
    """At most ``max_len`` ids, dropping from the start (``'pre'``, as Keras) or the end (``'post'``)."""
    if len(ids) <= max_len:
        return ids
    return ids[-max_len:] if truncating == "pre" else ids[:max_len]


def _check_encoder(settings: EncodingSettings, encoder: Encoder) -> None:
    """Refuse an encoder of another kind than ``settings.encoder`` (a mix-up, not a choice)."""
    if encoder.kind != settings.encoder:
        raise InputError(
            f"The settings ask for the {settings.encoder!r} encoder but a {encoder.kind!r} encoder was given. "
            "Build the encoder from the same settings with build_encoder()."
        )


def encode_text(text: str, settings: EncodingSettings, encoder: Encoder) -> list[int]:
    """One text's ids: START + token ids, truncated to ``settings.max_len``, not padded."""
    return [int(i) for i in encode_texts([text], settings, encoder)[0]]


def encode_texts(
    texts: Iterable[str], settings: EncodingSettings, encoder: Encoder, *, n_process: int = 1, batch_size: int = 1000
) -> list[np.ndarray]:
    """Each text's ids as an int32 array: START + token ids, truncated to ``max_len`` on the
    ``truncating`` side, not padded (pad with :func:`owntrain.vocab.pad_sequences`).

    Padding these arrays gives exactly what padding the untruncated sequences would give.
    """
    _check_encoder(settings, encoder)
    encode = _sequence_encoder(settings, encoder)
    return [encode(tokens) for tokens in tokenize(texts, settings.text, batch_size=batch_size, n_process=n_process)]


def _sequence_encoder(settings: EncodingSettings, encoder: Encoder) -> Callable[[Sequence[str]], np.ndarray]:
    """tokens -> int32 ids: START + token ids truncated to ``max_len``, then (with
    ``ngram_buckets``) the hashed ids of the bigrams of the tokens that were kept."""
    max_len, side = settings.max_len, settings.truncating
    if not settings.ngram_buckets:
        return lambda tokens: np.asarray(truncate(encoder.encode(tokens), max_len, side), dtype=np.int32)
    hasher = BigramHasher(settings.ngram_buckets, int(encoder.size))

    def encode(tokens: Sequence[str]) -> np.ndarray:
        ids = truncate(encoder.encode(tokens), max_len, side)
        n = len(tokens)
        kept = n if n + 1 <= max_len else (max_len if side == "pre" else max_len - 1)
        words = tokens[n - kept:] if side == "pre" else tokens[:kept]
        return np.concatenate([np.asarray(ids, dtype=np.int32), hasher.ids(words)])

    return encode


def encoder_to_dict(encoder: Encoder) -> dict[str, Any]:
    """JSON-ready form of either encoder (the bundle's ``vocab.json``)."""
    return encoder.to_dict()


def encoder_from_dict(d: Mapping[str, Any]) -> Encoder:
    """Inverse of :func:`encoder_to_dict`, dispatching on ``d['kind']``."""
    kind = d.get("kind") if isinstance(d, Mapping) else None
    if kind == Vocabulary.kind:
        return Vocabulary.from_dict(d)
    if kind == HashEncoder.kind:
        return HashEncoder.from_dict(d)
    raise InputError(f"Not an owntrain encoder: kind {kind!r}, expected one of {', '.join(ENCODERS)}.")


def load_encoder(path: str | Path) -> Encoder:
    """Read an encoder JSON file (``vocab.json``)."""
    return encoder_from_dict(read_json(Path(path)))


def read_split_texts(dataset: Path, split: str = "train") -> list[str]:
    """The ``text`` column of the rows of ``split`` in a workspace's ``dataset.parquet``."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(dataset, columns=["text", "split"])
    except (OSError, ValueError, KeyError) as exc:
        raise WorkspaceError(
            f"Cannot read the columns text and split from {dataset} ({exc}). Run `owntrain ingest` again."
        ) from None
    texts = table.filter(pc.equal(table["split"], split))["text"].to_pylist()
    return [t if t is not None else "" for t in texts]


def workspace_encoder(workspace: "Workspace", settings: EncodingSettings, *, n_process: int = 1) -> Encoder:
    """The encoder for a workspace's training split, cached under ``workspace.cache``.

    The cache file (:func:`owntrain.cache.encoder_path`, the one fit uses too) is keyed by the
    settings that decide the encoder and the SHA-256 of ``dataset.parquet``, so a new ingest or
    other settings build a new vocabulary.
    """
    from owntrain import cache

    if settings.encoder == "hash":
        return HashEncoder(settings.hash_buckets)
    dataset = workspace.require_dataset()
    cache_file = cache.encoder_path(workspace, settings, sha256_file(dataset))
    cached = cache.read_encoder(cache_file)
    if cached is not None and cached.kind == settings.encoder:
        return cached  # a damaged file reads as None and is rebuilt below
    texts = read_split_texts(dataset, "train")
    if not texts:
        raise WorkspaceError(
            f"The dataset {dataset} has no rows in the train split, so there is nothing to build a "
            "vocabulary from. Run `owntrain ingest` again with more data or a split column that has 'train' rows."
        )
    vocab = build_encoder(texts, settings, n_process=n_process)
    cache.write_encoder(cache_file, vocab)
    return vocab


def bundle_encoder(bundle: Path) -> tuple[EncodingSettings, Encoder] | None:
    """The settings and encoder stored in a bundle folder, or None when it holds no ``vocab.json``.

    Reads ``<bundle>/vocab.json`` and, when present, ``<bundle>/preprocessing.json`` (its encoding
    settings; other keys there are ignored, the text settings may be nested under ``text`` or
    flat). Does not
    verify the bundle's manifest: use the bundle module for that before scoring.
    """
    vocab_file = bundle / "vocab.json"
    if not vocab_file.is_file():
        return None
    encoder = load_encoder(vocab_file)
    pre_file = bundle / "preprocessing.json"
    raw = read_json(pre_file) if pre_file.is_file() else {}
    if not isinstance(raw, Mapping):
        raise InputError(f"{pre_file} should hold a JSON object of preprocessing settings.")
    names = {f.name for f in fields(EncodingSettings)}
    values = {k: v for k, v in raw.items() if k in names}
    text_names = {f.name for f in fields(TextSettings)}
    text = raw.get("text") if isinstance(raw.get("text"), Mapping) else raw  # nested or flat
    values["text"] = {k: v for k, v in text.items() if k in text_names}
    values.setdefault("encoder", encoder.kind)
    return EncodingSettings.from_dict(values), encoder


@dataclass(frozen=True)
class EncoderSource:
    """An encoder with the settings it goes with and where it came from."""

    settings: EncodingSettings
    encoder: Encoder
    origin: str
    """``'bundle'`` or ``'workspace'``."""
    path: Path
    """The bundle's ``vocab.json``, or the workspace dataset it was built from."""


def find_encoder(
    workspace: "Workspace",
    *,
    lang: str | None = None,
    top_words: int | None = None,
    min_df: int | None = None,
) -> EncoderSource:
    """The encoder of the workspace's latest bundle, or one built from its training split.

    The bundle's (``<bundle>/vocab.json``) is used unless it is absent or a setting is given, in
    which case a vocabulary is built (or read from the cache) from the workspace's training split
    with the given settings and the defaults for the others.
    """
    if lang is None and top_words is None and min_df is None:
        found = bundle_encoder(workspace.bundle)
        if found is not None:
            return EncoderSource(found[0], found[1], "bundle", workspace.bundle / "vocab.json")
    settings = EncodingSettings(
        text=TextSettings(lang=lang if lang is not None else DEFAULTS.lang),
        top_words=top_words if top_words is not None else DEFAULTS.top_words,
        min_df=min_df if min_df is not None else DEFAULTS.min_df,
        encoder="vocab",
    )
    return EncoderSource(settings, workspace_encoder(workspace, settings), "workspace", workspace.require_dataset())


def parse_ids(text: str) -> list[int]:
    """Ids written as ``'1 4 2'``, ``'1,4,2'`` or ``'[1, 4, 2]'``."""
    cleaned = text.replace(",", " ").replace("[", " ").replace("]", " ").split()
    try:
        return [int(part) for part in cleaned]
    except ValueError:
        raise InputError(f"Cannot read {text!r} as ids: expected whole numbers separated by spaces, like '1 4 2 17'.") from None
