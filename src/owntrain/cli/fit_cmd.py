"""`owntrain fit`: tokenize, build the vocabulary, train, evaluate; one run folder per fit."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from owntrain.cli import app, echo_err, user_errors
from owntrain.config import (
    AUTO_BATCH_MAX, AUTO_BATCH_MIN, AUTO_LEARNING_RATE_AT_MAX, AUTO_STEPS_PER_EPOCH, DEFAULTS, arch_defaults,
    auto_learning_rate,
)


def _logs_line(logs: dict[str, float]) -> str:
    parts = []
    for key, label in (("loss", "loss"), ("accuracy", "acc"), ("val_loss", "val_loss"), ("val_accuracy", "val_acc")):
        if key in logs:
            parts.append(f"{label} {logs[key]:.4f}")
    return "  ".join(parts)


def format_duration(seconds: float) -> str:
    from owntrain.cli.evaluate_cmd import format_duration as fmt  # imported late: `fit` is registered first

    return fmt(seconds)


class _Display:
    """Prints fit's progress: stage messages, one line per epoch, a live batch line on a terminal."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()
        self._live_shown = False

    def _clear(self) -> None:
        if self._live_shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self._live_shown = False

    def __call__(self, event: Any) -> None:
        if event.stage == "batch":
            if self.live:
                eta = f"  ~{format_duration(event.eta_seconds)} left" if event.eta_seconds is not None else ""
                sys.stderr.write(f"\r\033[K  epoch {event.epoch}/{event.epochs}  batch {event.step}/{event.steps}  "
                                 f"{_logs_line(dict(event.logs))}{eta}")
                sys.stderr.flush()
                self._live_shown = True
            return
        self._clear()
        if event.stage == "epoch":
            left = ""
            if event.eta_seconds:
                left = f"  ~{format_duration(event.eta_seconds)} left"
            best = "  (best so far)" if event.improved else ""
            typer.echo(f"epoch {event.epoch}/{event.epochs}  {_logs_line(dict(event.logs))}  "
                       f"{format_duration(event.epoch_seconds)}{left}{best}")
            if event.message:
                typer.echo(f"  {event.message}")
        elif event.message:
            typer.echo(event.message)

    def close(self) -> None:
        self._clear()


def format_fit_summary(result: Any) -> str:
    from owntrain.cli.evaluate_cmd import format_metrics

    m = result.metrics
    t = m["training"]
    lines = [
        "",
        f"Run {result.run_id}: best epoch {result.best_epoch} of {result.epochs_completed}"
        + (" (stopped early)" if result.stopped_early else "")
        + f", {format_duration(result.train_seconds)} in epochs, {result.samples_per_second:,.0f} samples/s",
    ]
    if result.vectors:
        v = result.vectors
        lines.append(f"  word vectors {v['path']}: {v['covered']:,} of {v['tokens']:,} vocabulary tokens covered "
                     f"({100 * v['coverage']:.1f}%)")
    lines.append("")
    if m["test"] is not None:
        lines.append(format_metrics(m["test"], result.labels, title="Test split", baseline=m["baseline"]))
    else:
        lines.append("No test split in the workspace; metrics below are on the validation split.")
        lines.append(format_metrics(m["validation"], result.labels, title="Validation split", baseline=m["baseline"]))
    v = m["validation"]
    lines.append(f"Validation split ({v['n']:,} rows): accuracy {v['accuracy']:.3f}   macro-F1 {v['macro_f1']:.3f}"
                 + (f"   (threshold {result.threshold:.3f} {m['threshold_rule']})" if result.threshold is not None else ""))
    lines.append(f"Rows: train {t['rows']['train']:,}, validation {t['rows']['validation']:,}, test {t['rows']['test']:,}")
    lines.append(f"Model: {result.model_path}")
    if result.bundle_dir:
        lines.append(f"Bundle: {result.bundle_dir} (score with `owntrain score FILE`; carry it with `owntrain export`)")
    lines.append(f"Metrics: {result.run_dir / 'metrics.json'}   history: {result.run_dir / 'history.json'}")
    lines.append(f"TensorBoard: tensorboard --logdir {result.run_dir / 'logs'}")
    return "\n".join(lines)


def _d(knob: str) -> str:
    """The help text's default of an architecture-dependent setting: ``nbngram, ngram: X | recipe: Y``."""
    ngram, recipe = (_show(arch_defaults(a)[knob]) for a in ("nbngram", "lstm"))
    return f"default nbngram, ngram: {ngram} | recipe: {recipe}"


def _show(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# The "auto" rules of owntrain.config, stated from its constants so the help cannot drift from them.
_AUTO_BATCH = (f"auto: {AUTO_BATCH_MAX} from {AUTO_BATCH_MAX * AUTO_STEPS_PER_EPOCH:,} training texts, else the "
               f"largest smaller power of two that still makes {AUTO_STEPS_PER_EPOCH} batches an epoch, at least "
               f"{AUTO_BATCH_MIN}")
_AUTO_RATE = (f"auto: {AUTO_LEARNING_RATE_AT_MAX:g} at batch {AUTO_BATCH_MAX}, times the square root of "
              f"batch/{AUTO_BATCH_MAX}, so {auto_learning_rate(AUTO_BATCH_MAX // 4):g} at {AUTO_BATCH_MAX // 4}")


@app.command("fit")
def fit_command(
    lang: Annotated[str, typer.Option(help="spaCy language code of the texts, e.g. en, de, fr, xx.")] = DEFAULTS.lang,
    arch: Annotated[str, typer.Option(
        help="Architecture: nbngram (ngram plus, for two classes, a naive-Bayes-weighted linear term over the same "
             "ids: the most accurate), ngram (mean of word and hashed word-pair embeddings, fastText style), lstm "
             "(the recipe: Embedding(5000, 32) -> LSTM(100)), bilstm or flatten. Options whose default reads "
             "'nbngram, ngram: X | recipe: Y' take the chosen architecture's.")] = DEFAULTS.arch,
    embedding_dim: Annotated[Optional[int], typer.Option(
        "--embedding-dim", help=f"Embedding size [{_d('embedding_dim')}, or the size of --vectors].",
        show_default=False)] = None,
    units: Annotated[int, typer.Option(help="LSTM units (flatten: hidden Dense units; nbngram, ngram: unused).")] = DEFAULTS.units,
    dropout: Annotated[Optional[float], typer.Option(
        help=f"Dropout before the output (lstm, bilstm, flatten: also after the embedding); 0: none [{_d('dropout')}].",
        show_default=False)] = None,
    epochs: Annotated[Optional[int], typer.Option(
        help=f"Most passes over the training data [{_d('epochs')}; with --resume: the run's own].",
        show_default=False)] = None,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", help=f"Texts per training batch [{_d('batch_size')}; {_AUTO_BATCH}].",
        show_default=False)] = None,
    learning_rate: Annotated[Optional[float], typer.Option(
        "--learning-rate", help=f"Adam learning rate [{_d('learning_rate')}; {_AUTO_RATE}].",
        show_default=False)] = None,
    patience: Annotated[Optional[int], typer.Option(
        help=f"Stop after this many epochs without a lower validation loss [{_d('patience')}; "
             "with --resume: the run's own].", show_default=False)] = None,
    ngram_buckets: Annotated[Optional[int], typer.Option(
        "--ngram-buckets", help=f"Hash buckets of the word-pair ids; 0: no word pairs [{_d('ngram_buckets')}].",
        show_default=False)] = None,
    class_weight: Annotated[Optional[str], typer.Option(
        "--class-weight", help="'balanced': weight rows inversely to their label's frequency.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of weights and shuffling (same seed, same result).")] = DEFAULTS.seed,
    batching: Annotated[str, typer.Option(
        help="bucket: batch texts of similar length, pad each batch only to its longest text and mask the "
             "padding (faster, same model); fixed: the recipe's padding of every text to --max-len, no masking. "
             "flatten always uses fixed.")] = DEFAULTS.batching,
    vectors: Annotated[Optional[Path], typer.Option(
        help="Word vectors in word2vec text format (GloVe, fastText .vec) to initialise the embedding.",
        exists=True, dir_okay=False, readable=True)] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the latest run (or --run) from its last completed epoch, with its settings.")] = False,
    run: Annotated[Optional[str], typer.Option("--run", help="Run id to continue with --resume.")] = None,
    top_words: Annotated[Optional[int], typer.Option(
        "--top-words", help=f"Vocabulary size, ids 0..top_words-1 [{_d('top_words')}].", show_default=False)] = None,
    min_df: Annotated[int, typer.Option("--min-df", help="Fewest training documents a token must occur in.")]
        = DEFAULTS.min_df,
    max_len: Annotated[Optional[int], typer.Option(
        "--max-len", help="Longest sequence (START + word ids); longer texts are cut. With --batching fixed every "
                          f"text is padded to it [{_d('max_len')}].", show_default=False)] = None,
    padding: Annotated[str, typer.Option(help="Pad at the start (pre) or end (post).")] = DEFAULTS.padding,
    truncating: Annotated[str, typer.Option(help="Cut long texts at the start (pre) or end (post).")]
        = DEFAULTS.truncating,
    encoder: Annotated[str, typer.Option(
        "--encoder", "--encoding", help="vocab (stored vocabulary) or hash (stable hashing, no vocabulary).")]
        = DEFAULTS.encoder,
    hash_buckets: Annotated[int, typer.Option("--hash-buckets", help="Id range of the hash encoder.")]
        = DEFAULTS.hash_buckets,
    lowercase: Annotated[bool, typer.Option(help="Lowercase tokens.")] = DEFAULTS.lowercase,
    keep_punct: Annotated[bool, typer.Option("--keep-punct", help="Keep punctuation tokens.")] = DEFAULTS.keep_punct,
    workspace: Annotated[Path, typer.Option("--workspace", "-w", help="Workspace folder.")] = DEFAULTS.workspace,
) -> None:
    """Train a classifier on the workspace's training split and evaluate it."""
    from owntrain.train import fit
    from owntrain.model import import_tensorflow_quietly

    display = _Display()
    with user_errors():  # also around the TensorFlow import: Ctrl-C during it prints one line too
        import_tensorflow_quietly()
        try:
            result = fit(
                workspace, lang=lang, lowercase=lowercase, keep_punct=keep_punct, top_words=top_words, min_df=min_df,
                max_len=max_len, padding=padding, truncating=truncating, encoder=encoder, hash_buckets=hash_buckets,
                arch=arch, embedding_dim=embedding_dim, units=units, dropout=dropout, epochs=epochs,
                batch_size=batch_size, learning_rate=learning_rate, patience=patience, class_weight=class_weight,
                ngram_buckets=ngram_buckets,
                seed=seed, batching=batching, vectors=vectors, resume=resume, run=run, progress=display,
            )
        except KeyboardInterrupt:
            display.close()
            echo_err("Interrupted. Every completed epoch is checkpointed; continue with `owntrain fit --resume`.")
            raise typer.Exit(code=130) from None
        finally:
            display.close()
    typer.echo(format_fit_summary(result))
