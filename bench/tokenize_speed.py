"""Tokenization speed on IMDB train and OOV rates on the German and French Amazon reviews.

    python bench/tokenize_speed.py [--data ../shared/data] [--processes 2] [--repeat 1]

Prints, in one run so the figures are comparable:

* texts/s for tokenizing + encoding the 25,000 IMDB training reviews (``<br />`` replaced by a
  space, as ingest does) with a plain per-text ``nlp.tokenizer(text)`` loop, with owntrain's
  batched ``encode_texts`` in one process and in ``--processes`` processes, and with spaCy's own
  ``nlp.pipe(n_process=...)`` for reference; every variant produces the same ids (checked);
* texts/s for building the vocabulary alone and for building it and encoding in one pass;
* the id of ``the`` and the start of a decoded review;
* the OOV rate (share of test-split tokens that encode to <UNK>) of amazon_reviews_de and
  amazon_reviews_fr at top_words 5000 and 20000, vocabulary from the train split (min_df 2).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Callable

import pandas as pd

from owntrain.encoding import EncodingSettings, build_and_encode, build_encoder, encode_texts
from owntrain.text import TextSettings, doc_tokens, load_tokenizer
from owntrain.vocab import UNK

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def cpu_seconds() -> float:
    """CPU time of this process and of its finished child processes (the pool workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    """Best wall time and best CPU time of ``repeat`` calls, and the last result.

    On a shared machine the wall time of a variant depends on what else runs; its CPU time much
    less, so both are printed.
    """
    best, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), cpu_seconds()
        result = fn()
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, cpu_seconds() - start_cpu)
    return best, best_cpu, result


def as_lists(seqs) -> list[list[int]]:
    return [list(map(int, s)) for s in seqs]


def imdb_speed(data: Path, processes: int, repeat: int) -> None:
    """Texts/s of the tokenize + encode variants on IMDB train."""
    texts = [t.replace("<br />", " ") for t in pd.read_csv(data / "imdb" / "train.csv")["text"]]
    settings = EncodingSettings(max_len=10**9)  # no truncation, so all variants are comparable
    n = len(texts)
    print(f"IMDB train: {n:,} reviews; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f} at start")

    seconds, cpu, vocab = timed(lambda: build_encoder(texts, settings), 1)
    print(f"  build vocabulary (tokenize, count)           {n / seconds:8,.0f} texts/s  ({seconds:.1f} s, {cpu:.1f} CPU s)")
    print(f"  'the' has id {vocab.id_of('the')}; vocabulary size {vocab.size:,}")

    seconds, cpu, _ = timed(lambda: build_and_encode(texts, settings), 1)
    print(f"  build vocabulary + encode, one tokenization  {n / seconds:8,.0f} texts/s  ({seconds:.1f} s, {cpu:.1f} CPU s)")

    nlp = load_tokenizer(settings.text.lang)
    text_settings = settings.text

    def loop() -> list[list[int]]:
        return [vocab.encode(doc_tokens(nlp.tokenizer(t), text_settings)) for t in texts]

    def spacy_mp() -> list[list[int]]:
        docs = nlp.pipe(texts, batch_size=1000, n_process=processes)
        return [vocab.encode(doc_tokens(d, text_settings)) for d in docs]

    variants = [
        ("per-text nlp.tokenizer(text) loop", loop),
        ("owntrain encode_texts, 1 process", lambda: as_lists(encode_texts(texts, settings, vocab))),
        (f"owntrain encode_texts, {processes} processes",
         lambda: as_lists(encode_texts(texts, settings, vocab, n_process=processes))),
        (f"spaCy nlp.pipe(n_process={processes}) (reference)", spacy_mp),
    ]
    reference = None
    for name, fn in variants:
        seconds, cpu, ids = timed(fn, repeat)
        if reference is None:
            reference = ids
        same = "same ids" if ids == reference else "IDS DIFFER"
        print(f"  tokenize + encode: {name:40s} {n / seconds:8,.0f} texts/s  "
              f"({seconds:.1f} s, {cpu:.1f} CPU s, {same})")
    print("  decoded:", vocab.decode(reference[0])[:100], "...")
    print(f"  load average {os.getloadavg()[0]:.1f} at end")


def oov_rates(data: Path, name: str, lang: str, top_words: tuple[int, ...]) -> None:
    """OOV rate of the test split for each ``top_words``, vocabulary from the train split."""
    train = pd.read_csv(data / name / "train.csv")["text"].astype(str).tolist()
    test = pd.read_csv(data / name / "test.csv")["text"].astype(str).tolist()
    for k in top_words:
        settings = EncodingSettings(text=TextSettings(lang=lang), top_words=k, max_len=10**9)
        vocab = build_encoder(train, settings)
        seqs = encode_texts(test, settings, vocab)
        tokens = sum(len(s) - 1 for s in seqs)
        unknown = sum(int((s[1:] == UNK).sum()) for s in seqs)
        print(f"  {name} ({lang}), top_words {k:>6,}: OOV {unknown / tokens:6.2%} of {tokens:,} test tokens "
              f"(vocabulary {vocab.n_tokens:,} tokens of {vocab.n_types:,} types seen, min_df {vocab.min_df})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with imdb/, amazon_reviews_de/, ...")
    parser.add_argument("--processes", type=int, default=2, help="worker processes for the multi-process variants")
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant; the best time is reported")
    parser.add_argument("--skip-speed", action="store_true", help="only the OOV rates")
    args = parser.parse_args()
    if not args.data.is_dir():
        parser.error(f"data folder {args.data} not found; pass --data")
    print(f"Python {platform.python_version()}, spaCy {__import__('spacy').__version__}, data {args.data}")
    if not args.skip_speed:
        imdb_speed(args.data, args.processes, args.repeat)
    print("OOV rates (test split, vocabulary from the train split):")
    for name, lang in (("amazon_reviews_de", "de"), ("amazon_reviews_fr", "fr")):
        oov_rates(args.data, name, lang, (5000, 20000))


if __name__ == "__main__":
    main()
