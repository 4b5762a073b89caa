"""Tokenization: spaCy's rule-based tokenizer for a language, and the normalisation owntrain applies.

Only ``spacy.blank(lang)`` is used (the tokenizer, no trained pipeline, nothing downloaded), so every
language spaCy ships rules for works offline. Languages whose tokenizer needs a third-party
segmenter (Japanese, Korean, Thai, Vietnamese) raise :class:`~owntrain.errors.LanguageError` naming
the package to install. ``xx`` is spaCy's multi-language tokenizer for mixed-language data; Chinese
(``zh``) uses spaCy's default character segmentation, which needs no extra package.

Normalisation choices, recorded in :class:`TextSettings` so that scoring reproduces them exactly:

* **Casing.** With ``lowercase=True`` each token is lowercased with :meth:`str.lower`, which is
  correct for every Unicode letter (``Ä`` -> ``ä``, ``É`` -> ``é``, ``Σ`` -> ``σ``). ``ß`` stays ``ß``
  (``Straße`` -> ``straße``) and ``STRASSE`` becomes ``strasse``, so the two spellings stay distinct
  tokens; :meth:`str.casefold` would map ``ß`` to ``ss`` and merge them, but it also rewrites other
  letters in ways users do not expect to see in a vocabulary listing, so owntrain uses ``lower()``.
  The capital ``ẞ`` lowercases to ``ß``.
* **Punctuation and whitespace.** Tokens spaCy marks as punctuation (``,`` ``!`` ``--`` ``:)``) are
  dropped unless ``keep_punct=True``. Whitespace tokens are always dropped: they carry no meaning
  once texts are split into tokens. Numbers (``10``, ``3,5``, ``1.000``) and symbols such as ``€``
  are kept.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import os
import pkgutil
import re
from collections import deque
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from owntrain.config import DEFAULTS
from owntrain.errors import InputError, LanguageError

if TYPE_CHECKING:  # pragma: no cover
    from spacy.language import Language
    from spacy.tokens import Doc

#: Languages whose spaCy tokenizer needs a segmenter that does not ship with spaCy:
#: code -> (what to pip install, what else it needs).
EXTRA_PACKAGES: dict[str, tuple[str, str]] = {
    "ja": ("sudachipy sudachidict_core", ""),
    "ko": ("natto-py", " plus the mecab-ko and mecab-ko-dic system libraries"),
    "th": ("pythainlp", ""),
    "vi": ("pyvi", ""),
}

_CODE = re.compile(r"[a-z]{2,3}")
LANGUAGES_URL = "https://spacy.io/usage/models#languages"


@dataclass(frozen=True)
class TextSettings:
    """How texts become tokens; saved with a model so scoring tokenizes exactly as training did."""

    lang: str = DEFAULTS.lang
    lowercase: bool = DEFAULTS.lowercase
    keep_punct: bool = DEFAULTS.keep_punct

    def __post_init__(self) -> None:
        if not isinstance(self.lang, str) or not self.lang.strip():
            raise InputError(
                f"Language must be a spaCy language code such as 'en', 'de' or 'xx', got {self.lang!r}."
            )
        object.__setattr__(self, "lang", self.lang.strip().lower())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of every setting."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TextSettings":
        """Inverse of :meth:`to_dict`; missing keys take the defaults, unknown keys are an error."""
        return cls(**_known_fields(cls, d))


def _known_fields(cls: type, d: Mapping[str, Any]) -> dict[str, Any]:
    """Keys of ``d`` that are fields of dataclass ``cls``; raise InputError naming any other key."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise InputError(
            f"Unknown {cls.__name__} setting(s): {', '.join(unknown)}. "
            f"Expected only: {', '.join(sorted(names))}. The settings may come from a newer owntrain; "
            "upgrade owntrain or re-create them."
        )
    return dict(d)


def available_languages() -> list[str]:
    """Language codes spaCy ships tokenizer rules for (some need an extra package, see EXTRA_PACKAGES)."""
    import spacy.lang

    return sorted(m.name for m in pkgutil.iter_modules(spacy.lang.__path__) if m.ispkg)


def load_tokenizer(lang: str) -> "Language":
    """``spacy.blank(lang)``, created once per process and language.

    Raises LanguageError naming the package to install when the language needs one, or listing the
    valid codes when ``lang`` is not a language spaCy knows.
    """
    return _load_tokenizer(lang.strip().lower())


@functools.lru_cache(maxsize=None)
def _load_tokenizer(code: str) -> "Language":
    import spacy

    if not _CODE.fullmatch(code):
        raise _unknown_language(code)
    try:
        return spacy.blank(code)
    except ImportError as exc:
        raise _language_error(code, exc) from None


def _language_error(code: str, exc: ImportError) -> LanguageError:
    """The LanguageError for a failed ``spacy.blank(code)``: a missing package or an unknown code."""
    if code not in EXTRA_PACKAGES and importlib.util.find_spec(f"spacy.lang.{code}") is None:
        return _unknown_language(code)
    package, extra = EXTRA_PACKAGES.get(code, ("", ""))
    install = f"pip install {package}{extra}" if package else "install the package named in spaCy's message"
    return LanguageError(
        f"spaCy's tokenizer for '{code}' needs a package that is not installed ({exc}). "
        f"To use --lang {code}: {install}, or pip install 'spacy[{code}]'. "
        "Or use --lang xx, spaCy's multi-language tokenizer."
    )


def _unknown_language(code: str) -> LanguageError:
    """The LanguageError for a code spaCy has no tokenizer for, with a guess and the valid codes."""
    codes = available_languages()
    prefix = re.split(r"[^a-z]", code, maxsplit=1)[0]
    hint = f" Did you mean '{prefix}'?" if prefix != code and prefix in codes else ""
    return LanguageError(
        f"Unknown language {code!r}: spaCy has no tokenizer for it.{hint} Use a spaCy language code, "
        f"mostly ISO 639-1 ({LANGUAGES_URL}); 'xx' serves mixed-language data. "
        f"Codes available here: {', '.join(codes)}."
    )


def doc_tokens(doc: "Doc", settings: TextSettings) -> list[str]:
    """The tokens of one spaCy Doc after owntrain's normalisation (see the module docstring)."""
    keep_punct, lowercase = settings.keep_punct, settings.lowercase
    out: list[str] = []
    for token in doc:
        if token.is_space or (token.is_punct and not keep_punct):
            continue
        out.append(token.text.lower() if lowercase else token.text)
    return out


_SURROGATE = re.compile("[\ud800-\udfff]")


def _checked(texts: Iterable[str]) -> Iterator[str]:
    """Pass texts through, refusing anything that is not a str (spaCy's own error is cryptic).

    Lone surrogates (a JSON ``"\\ud800"``), which spaCy cannot encode, become spaces, as
    normalisation makes them; normalised texts never hold one, so their tokens are unchanged.
    """
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(
                f"Text number {i} is {type(text).__name__} ({text!r:.60}), expected a str. "
                "Drop or fill missing texts before tokenizing (owntrain ingest does)."
            )
        if not text.isascii() and _SURROGATE.search(text):
            text = _SURROGATE.sub(" ", text)
        yield text


def tokenize(
    texts: Iterable[str],
    settings: TextSettings,
    *,
    batch_size: int = 1000,
    n_process: int = 1,
) -> Iterator[list[str]]:
    """The normalised tokens of each text, in order, produced lazily as they are consumed.

    Arguments and the language are checked by this call; texts are read only as results are taken.

    Uses spaCy's batched tokenizer ``pipe``. With ``n_process > 1`` (``-1``: one per CPU) batches
    of ``batch_size`` texts are tokenized in that many worker processes, which send back plain token
    lists (cheaper than spaCy's own ``n_process``, which pickles whole Docs and measured slower than
    one process, see bench/tokenize_speed.py). Workers are started with the ``spawn`` method, safe
    after TensorFlow has started threads; each takes about a second to load the tokenizer, so more
    than one process pays only from some thousands of texts (:func:`suggested_processes`). As with
    any ``spawn`` multiprocessing, a script calling this must guard its entry point with
    ``if __name__ == "__main__":``.
    """
    if isinstance(texts, str):
        raise InputError("tokenize() takes an iterable of texts, got one str. Pass [text] for a single text.")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}.")
    if n_process == 0 or n_process < -1:
        raise InputError(f"n_process must be a positive number of processes or -1 (one per CPU), got {n_process}.")
    nlp = load_tokenizer(settings.lang)  # here too, so a LanguageError is raised by this call
    if n_process == -1:
        n_process = os.cpu_count() or 1
    if n_process == 1:
        return (doc_tokens(doc, settings) for doc in nlp.tokenizer.pipe(_checked(texts), batch_size=batch_size))
    return _tokenize_in_processes(_checked(texts), settings, batch_size, n_process)


def suggested_processes(n_texts: int, *, min_texts_per_process: int = 10_000, max_processes: int = 4) -> int:
    """How many processes :func:`tokenize` should use for ``n_texts`` texts on this machine.

    One process per ``min_texts_per_process`` texts, at most one per CPU and ``max_processes``.
    Measured on IMDB train (bench/tokenize_speed.py), 2 processes on 2 otherwise idle CPUs were
    about 1.25x faster than one, and slower than one when other work kept the CPUs busy: pass the
    result as ``n_process`` only where the machine is not shared.
    """
    return max(1, min(os.cpu_count() or 1, max_processes, n_texts // min_texts_per_process))


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    """Consecutive lists of ``size`` items (the last one shorter)."""
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _tokenize_in_processes(
    texts: Iterable[str], settings: TextSettings, batch_size: int, n_process: int
) -> Iterator[list[str]]:
    """Tokenize batches in a pool of ``spawn`` workers, keeping order and at most 2 batches per worker in flight."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(n_process, initializer=_init_worker, initargs=(settings.to_dict(),)) as pool:
        pending: deque = deque()
        for chunk in _chunks(texts, batch_size):
            pending.append(pool.apply_async(_tokenize_chunk, (chunk,)))
            if len(pending) >= 2 * n_process:
                yield from pending.popleft().get()
        while pending:
            yield from pending.popleft().get()


_worker_settings: TextSettings | None = None


def _init_worker(settings: dict[str, Any]) -> None:
    """Pool initializer: load the tokenizer once per worker process."""
    global _worker_settings
    _worker_settings = TextSettings.from_dict(settings)
    load_tokenizer(_worker_settings.lang)


def _tokenize_chunk(chunk: list[str]) -> list[list[str]]:
    """Worker task: the normalised tokens of each text of one batch."""
    assert _worker_settings is not None, "worker not initialised"
    nlp = load_tokenizer(_worker_settings.lang)
    return [doc_tokens(doc, _worker_settings) for doc in nlp.tokenizer.pipe(chunk, batch_size=len(chunk))]
