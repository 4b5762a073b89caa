"""The bundle: one self-contained, verifiable folder (or archive file) that scores texts offline.

```
bundle/
  model.keras          the Keras model, native format, without optimizer state (loaded with safe_mode=True)
  vocab.json           the encoder: vocabulary tokens and counts, or the hashing settings
  preprocessing.json   normalisation version, tokenizer language and casing, vocabulary size,
                       max_len, padding and truncating sides, the training text columns
  labels.json          class names in class-index order, the decision threshold and its rule
  metrics.json         evaluation on the test and validation splits, the majority baseline
  MODEL_CARD.md        the same facts for people
  manifest.json        format and format_version, every other file's SHA-256 and size, the model
                       summary, the library versions, and a digest of the manifest itself
```

Loading (:func:`load_bundle`) copies or unpacks the listed files into a private temporary folder,
verifies each one against the manifest, and only then parses them: JSON for everything but the
model, which Keras loads in safe mode after its configuration has been checked to hold nothing
but Keras' own layers (no Lambda, no custom objects). Nothing is ever unpickled; a file the
manifest does not list is never read. It returns a :class:`~owntrain.predictor.Bundle`, which
predicts (:mod:`owntrain.predictor`). Archive files are written and safely unpacked by
:mod:`owntrain.archive`; their names are re-exported here (``export_archive`` verifies the folder
before archiving it).

The manifest's ``digest`` (the bundle's fingerprint) is the SHA-256 of the manifest's own
canonical JSON: it detects an edited or damaged manifest and names the bundle's exact content.
It is integrity, not authenticity: someone who can rewrite every file can rewrite the digest too.
Compare the fingerprint ``owntrain info`` shows on both machines when that matters.

TensorFlow and Keras are imported only inside the functions that load or save the model, so
:func:`inspect_bundle` (``owntrain info``) needs neither.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import time
import uuid
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from owntrain.archive import (  # noqa: F401 - also re-exported
    ARCHIVE_SUFFIXES,
    MANIFEST,
    MAX_ARCHIVE_ENTRIES,
    MAX_UNPACKED_BYTES,
    archive_kind,
    unpack_archive,
    write_archive,
)
from owntrain.errors import BundleError, InputError, WorkspaceError
from owntrain.fileio import _CHUNK, _pid_alive, remove_stale_temporaries, sha256_file  # noqa: F401 - also re-exported
from owntrain.predictor import Bundle, Predictions  # noqa: F401 - also re-exported

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from owntrain.encoding import Encoder, EncodingSettings

BUNDLE_FORMAT = "owntrain-bundle"
FORMAT_VERSION = 2
"""The newest bundle format this owntrain reads, and writes when needed.

Version 2 added bigram ids (``ngram_buckets`` in preprocessing.json, the ngram arch). A bundle
without them is still written as version 1, so an older owntrain keeps scoring it; an older
owntrain refuses a version-2 bundle instead of silently ignoring its bigram ids."""

# MANIFEST ("manifest.json") comes from owntrain.archive, which needs it to find a bundle in an archive.
MODEL_FILE = "model.keras"
VOCAB_FILE = "vocab.json"
PREPROCESSING_FILE = "preprocessing.json"
LABELS_FILE = "labels.json"
METRICS_FILE = "metrics.json"
CARD_FILE = "MODEL_CARD.md"
REQUIRED_FILES: tuple[str, ...] = (MODEL_FILE, VOCAB_FILE, PREPROCESSING_FILE, LABELS_FILE, METRICS_FILE, CARD_FILE)

KERAS_MEMBERS = frozenset({"metadata.json", "config.json", "model.weights.h5"})
REFUSED_CLASSES = frozenset({"Lambda", "TFSMLayer", "__lambda__", "function"})
VERSION_PACKAGES: tuple[str, ...] = ("owntrain", "tensorflow", "keras", "spacy", "numpy")
WARN_PACKAGES: tuple[str, ...] = ("tensorflow", "keras", "spacy")
"""Packages whose version difference can change a loaded model's predictions (spaCy: tokenization)."""

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class BundleVersionWarning(UserWarning):
    """A bundle was made with other library versions than the installed ones."""


# --------------------------------------------------------------------------- small helpers


def manifest_digest(manifest: Mapping[str, Any]) -> str:
    """SHA-256 of the manifest's canonical JSON without its ``digest`` key: the bundle's fingerprint."""
    body = {k: v for k, v in manifest.items() if k != "digest"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def installed_versions() -> dict[str, str]:
    """Versions of the packages that decide a bundle's predictions, as installed here."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in VERSION_PACKAGES:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - not every platform opens folders
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- export


def _recover_interrupted_swap(out: Path) -> None:
    """Finish what a killed export left: restore a moved-aside previous bundle, drop stale copies."""
    pattern = re.compile(rf"^\.{re.escape(out.name)}\.old-(\d+)-[0-9a-f]+$")
    for old in sorted(out.parent.glob(f".{out.name}.old-*")):
        match = pattern.match(old.name)
        if not match or _pid_alive(int(match.group(1))):
            continue
        if not out.exists() and (old / MANIFEST).is_file():
            os.replace(old, out)
        else:
            shutil.rmtree(old, ignore_errors=True)
    remove_stale_temporaries(out)




@dataclass(frozen=True)
class _RunFiles:
    """What an export reads from a finished run folder."""

    root: Path
    settings: dict[str, Any]
    metrics: dict[str, Any]
    encoder: dict[str, Any]


def _run_root(source: Any) -> Path:
    """The run folder of a FitResult, a LoadedRun, or a path."""
    run_dir = getattr(source, "run_dir", None)
    return Path(run_dir if run_dir is not None else source)


def _read_run_json(path: Path, root: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WorkspaceError(
            f"{root} is not a finished training run: {path.name} is missing. Export a run that "
            "`owntrain fit` completed (continue an interrupted one with `owntrain fit --resume`)."
        ) from None
    except (OSError, ValueError) as exc:
        raise WorkspaceError(f"{path} is unreadable ({exc}). Train the run again with `owntrain fit`.") from None
    if not isinstance(value, dict):
        raise WorkspaceError(f"{path} should hold a JSON object. Train the run again with `owntrain fit`.")
    return value


def _read_run(root: Path) -> _RunFiles:
    if not root.is_dir():
        raise WorkspaceError(f"No run folder {root}. Pass a run folder under <workspace>/runs/ or a FitResult.")
    for name in ("settings.json", MODEL_FILE, METRICS_FILE, "encoder.json"):
        if not (root / name).is_file():
            raise WorkspaceError(
                f"Run {root.name} has not finished training ({name} is missing in {root}). "
                "Continue it with `owntrain fit --resume`, then export."
            )
    return _RunFiles(root, _read_run_json(root / "settings.json", root), _read_run_json(root / METRICS_FILE, root),
                     _read_run_json(root / "encoder.json", root))


def _training_text_columns(run_root: Path) -> list[str] | None:
    """The text column(s) ingest read, when every input file used the same ones (names only, no paths)."""
    report = run_root.parent.parent / "ingest_report.json"
    try:
        inputs = json.loads(report.read_text(encoding="utf-8")).get("inputs") or []
    except (OSError, ValueError, AttributeError):
        return None
    found = {tuple(i.get("text_columns") or ()) for i in inputs if isinstance(i, dict)}
    if len(found) == 1:
        cols = next(iter(found))
        if cols and all(isinstance(c, str) and c for c in cols):
            return list(cols)
    return None


def _normalization_record() -> dict[str, Any]:
    from owntrain.normalize import NORMALIZATION_VERSION

    return {
        "version": NORMALIZATION_VERSION,
        "steps": ["markup tags such as <br /> become spaces", "HTML entities decoded",
                  "control characters become spaces", "Unicode NFC", "runs of whitespace collapsed, trimmed"],
    }


def _preprocessing(run: _RunFiles) -> dict[str, Any]:
    from owntrain.encoding import EncodingSettings

    settings = EncodingSettings.from_dict(run.settings["encoding"])
    pre: dict[str, Any] = {"normalization": _normalization_record(), **settings.to_dict()}
    pre["tokenizer"] = f"spacy.blank({settings.text.lang!r}) rule-based tokenizer"
    pre["ids"] = {"pad": 0, "start": 1, "unknown": 2, "reserved": 3, "first_token": 4}
    cols = _training_text_columns(run.root)
    if cols:
        pre["text_columns"] = cols
    return pre


def _labels_record(run: _RunFiles) -> dict[str, Any]:
    labels = [str(label) for label in run.settings["labels"]]
    threshold = run.metrics.get("threshold")
    record: dict[str, Any] = {"labels": labels, "threshold": threshold,
                              "threshold_rule": run.metrics.get("threshold_rule", "most probable class")}
    if len(labels) == 2 and threshold is not None:
        record["positive_label"] = labels[1]
        record["decision"] = f"P({labels[1]}) >= {threshold} predicts {labels[1]!r}, otherwise {labels[0]!r}"
    else:
        record["decision"] = "the most probable class"
    record["train_counts"] = {str(k): int(v) for k, v in (run.settings.get("train_counts") or {}).items()}
    return record


def _save_model_for_bundle(src: Path, dest: Path) -> int:
    """Load the run's model safely and save it without optimizer state; returns the parameter count."""
    import keras

    try:
        model = keras.models.load_model(str(src), safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises many types for a damaged file
        raise WorkspaceError(
            f"The run's model {src} cannot be loaded ({type(exc).__name__}: {exc}). Train the run again."
        ) from None
    model.save(str(dest))
    return int(model.count_params())


def _manifest(tmp: Path, run: _RunFiles, parameters: int) -> dict[str, Any]:
    from owntrain import __version__

    files = {}
    for name in sorted(REQUIRED_FILES):
        path = tmp / name
        files[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    model = dict(run.settings.get("model") or {})
    model["parameters"] = parameters
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "format_version": 2 if (run.settings.get("encoding") or {}).get("ngram_buckets") else 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "owntrain_version": __version__,
        "run_id": str(run.settings.get("run_id") or run.root.name),
        "files": files,
        "model": model,
        "training": dict(run.settings.get("training") or {}),
        "versions": installed_versions(),
        "trained_with": dict(run.settings.get("versions") or {}),
    }
    manifest["digest"] = manifest_digest(manifest)
    return manifest


def export_bundle(source: Any, out_dir: str | os.PathLike | None = None) -> Path:
    """Write the bundle of a finished run to ``out_dir`` and return ``out_dir``.

    ``source`` is a :class:`~owntrain.train.FitResult`, a loaded run, or a run folder
    (``<workspace>/runs/<run_id>``). ``out_dir`` defaults to that workspace's ``bundle/``.
    The bundle is written to a temporary folder beside ``out_dir`` and renamed into place, so
    an export that fails (full disk, Ctrl-C) leaves the previous bundle there intact.
    """
    root = _run_root(source)
    run = _read_run(root)
    out = Path(out_dir) if out_dir is not None else root.parent.parent / "bundle"
    if out.exists() and not out.is_dir():
        raise BundleError(f"{out} exists and is not a folder. Pass another bundle folder (-o) or remove the file.")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise BundleError(
            f"{out} is a folder that holds something other than a bundle; owntrain will not replace it. "
            "Pass an empty or new folder, or an existing bundle folder."
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    _recover_interrupted_swap(out)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _write_bundle_files(tmp, run)
        _fsync_dir(tmp)
        _swap_into_place(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise BundleError(
                f"Could not write the bundle to {out} ({exc.strerror or exc}). The previous bundle there, if any, "
                "is unchanged. Free disk space or fix the folder's permissions, then run `owntrain export` again."
            ) from None
        raise
    return out


def _write_bundle_files(tmp: Path, run: _RunFiles) -> None:
    from owntrain.encoding import encoder_from_dict

    try:
        encoder_from_dict(run.encoder)
    except InputError as exc:
        raise WorkspaceError(f"The run's encoder.json cannot be used ({exc}). Train the run again.") from None
    parameters = _save_model_for_bundle(run.root / MODEL_FILE, tmp / MODEL_FILE)
    check_model_file(tmp / MODEL_FILE)
    pre = _preprocessing(run)
    labels = _labels_record(run)
    _write_file(tmp / VOCAB_FILE, _json_bytes(run.encoder))
    _write_file(tmp / PREPROCESSING_FILE, _json_bytes(pre))
    _write_file(tmp / LABELS_FILE, _json_bytes(labels))
    _write_file(tmp / METRICS_FILE, _json_bytes(run.metrics))
    sizes = {name: (tmp / name).stat().st_size for name in (MODEL_FILE, VOCAB_FILE, PREPROCESSING_FILE,
                                                            LABELS_FILE, METRICS_FILE)}
    card = model_card(run_id=str(run.settings.get("run_id") or run.root.name), labels=labels, preprocessing=pre,
                      metrics=run.metrics, model={**(run.settings.get("model") or {}), "parameters": parameters},
                      training=run.settings.get("training") or {}, versions=installed_versions(), sizes=sizes)
    _write_file(tmp / CARD_FILE, card.encode("utf-8"))
    _write_file(tmp / MANIFEST, _json_bytes(_manifest(tmp, run, parameters)))


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is moved aside first and removed after."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- model card


def _arch_line(model: Mapping[str, Any]) -> str:
    emb = f"embedding {_count(model.get('vocab_size'))} x {model.get('embedding_dim')}"
    if model.get("arch") not in ("ngram", "nbngram"):
        return f"{emb}, {model.get('units')} units"
    line = f"the mean of the {emb} vectors of a text's word and word-pair ids"
    if model.get("arch") == "nbngram" and model.get("n_classes") == 2:  # ModelSpec.nb_term
        line += (", plus a linear term over the same ids weighted by naive-Bayes log-count ratios of the training "
                 "split (one number per id)")
    return line


def _encoder_line(pre: Mapping[str, Any], model: Mapping[str, Any]) -> str:
    buckets = int(pre.get("ngram_buckets") or 0)
    if pre.get("encoder") == "hash":
        line = (f"- encoder `hash`: each token hashed (BLAKE2b) into {pre.get('hash_buckets')} ids, no vocabulary "
                "stored (0 padding, 1 start)")
    else:
        words = model.get("vocab_size", 0) - buckets if isinstance(model.get("vocab_size"), int) else "?"
        line = (f"- encoder `vocab`: {_count(words)} word ids (capped at top_words {pre.get('top_words')}, "
                f"min_df {pre.get('min_df')}; 0 padding, 1 start, 2 unknown)")
    if buckets:
        line += (f"; then one id per pair of adjacent words, hashed (BLAKE2b) into {buckets:,} buckets: no word "
                 "pair is stored, only one embedding row per bucket")
    return line


def _count(x: Any) -> str:
    return f"{x:,}" if isinstance(x, int) else "?"


def _metric(x: Any, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def model_card(*, run_id: str, labels: Mapping[str, Any], preprocessing: Mapping[str, Any],
               metrics: Mapping[str, Any], model: Mapping[str, Any], training: Mapping[str, Any],
               versions: Mapping[str, str], sizes: Mapping[str, int]) -> str:
    """MODEL_CARD.md: what the model does, how well, how it reads texts, and what it cannot do."""
    names = list(labels["labels"])
    text = preprocessing.get("text", {})
    lang = text.get("lang", "?")
    lines = [f"# Model card: owntrain text classifier, run {run_id}", ""]
    lines += ["## What it does", "",
              f"Classifies texts in language `{lang}` into {len(names)} classes: "
              + ", ".join(f"`{n}`" for n in names) + ".", ""]
    if labels.get("threshold") is not None:
        lines += [f"Decision: {labels['decision']}. The threshold {labels['threshold']} "
                  f"{labels.get('threshold_rule', '')}.", ""]
    else:
        lines += ["Decision: the most probable class.", ""]
    test = metrics.get("test")
    split = "test"
    if not test:
        test, split = metrics.get("validation") or {}, "validation"
    rows = (metrics.get("training") or {}).get("rows") or {}
    lines += ["## Training data", "",
              f"Trained on {_count(rows.get('train'))} texts of the organisation's own data (validation "
              f"{_count(rows.get('validation'))}, test {_count(rows.get('test'))}). Training label counts: "
              + ", ".join(f"`{k}` {v:,}" for k, v in (labels.get("train_counts") or {}).items()) + ".", "",
              "No training text is stored in this bundle. The vocabulary keeps only tokens that occurred in at "
              f"least {preprocessing.get('min_df', '?')} training document(s), with their counts.", ""]
    if test:
        lines += [f"## Evaluation ({split} split, {test.get('n', 0):,} texts)", "",
                  "| metric | value |", "|---|---|",
                  f"| accuracy | {_metric(test.get('accuracy'))} |",
                  f"| macro-F1 | {_metric(test.get('macro_f1'))} |"]
        if "roc_auc" in test:
            lines.append(f"| ROC AUC | {_metric(test.get('roc_auc'))} |")
        lines.append(f"| log loss | {_metric(test.get('log_loss'))} |")
        base = metrics.get("baseline") or {}
        if base:
            lines.append(f"| majority baseline accuracy (always `{base.get('label')}`) | {_metric(base.get('accuracy'))} |")
        lines += ["", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for name in names:
            c = (test.get("per_class") or {}).get(name, {})
            lines.append(f"| `{name}` | {_metric(c.get('precision'))} | {_metric(c.get('recall'))} | "
                         f"{_metric(c.get('f1'))} | {c.get('support', 0):,} |")
        lines.append("")
    lines += ["## Model", "",
              f"Architecture `{model.get('arch')}`: {_arch_line(model)}, "
              f"dropout {model.get('dropout')}, {model.get('parameters', 0):,} parameters. "
              f"Trained {training.get('epochs', '?')} epoch(s) at most, batch {training.get('batch_size', '?')}, "
              f"learning rate {training.get('learning_rate', '?')}, seed {training.get('seed', '?')}.", ""]
    norm = preprocessing.get("normalization", {})
    lines += ["## Preprocessing (applied identically when scoring)", "",
              f"- normalisation version {norm.get('version')}: " + "; ".join(norm.get("steps", [])),
              f"- tokenizer: {preprocessing.get('tokenizer')}; "
              + ("lowercased" if text.get("lowercase") else "case kept") + "; punctuation "
              + ("kept" if text.get("keep_punct") else "dropped"),
              _encoder_line(preprocessing, model),
              f"- sequences of at most {preprocessing.get('max_len')} word ids"
              + (" (and their bigram ids)" if preprocessing.get("ngram_buckets") else "") + ", padded at the "
              f"{'start' if preprocessing.get('padding') == 'pre' else 'end'}, long texts cut at the "
              f"{'start' if preprocessing.get('truncating') == 'pre' else 'end'}", ""]
    if preprocessing.get("text_columns"):
        lines += [f"Training read the text column(s) {', '.join(preprocessing['text_columns'])}; scoring looks for "
                  "them first.", ""]
    lines += ["## Use", "",
              "```", "owntrain score new.csv --bundle BUNDLE      # scored copy: new.scored.csv",
              "owntrain score --text \"...\" --bundle BUNDLE", "```", "",
              "```python", "import owntrain", "owntrain.load_bundle('BUNDLE').predict(['a text', 'another'])", "```", "",
              "## Limitations", "",
              "- The model knows only what its training texts showed: texts from another domain or language get "
              "predictions that look confident but are unreliable.",
              f"- Only the {'last' if preprocessing.get('truncating') == 'pre' else 'first'} "
              f"{preprocessing.get('max_len')} tokens of a long text are read.",
              "- Words outside the vocabulary all count as one unknown word.",
              "- Check the evaluation above on data like yours before relying on it; re-evaluate after the data "
              "changes.", "",
              "## Files", "", "| file | bytes |", "|---|---|"]
    lines += [f"| {name} | {n:,} |" for name, n in sizes.items()]
    lines += ["", "manifest.json lists every file's SHA-256; `owntrain info BUNDLE` verifies them.", "",
              "## Versions", "", ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class FileCheck:
    """One manifest entry checked against the file on disk."""

    name: str
    expected_sha256: str
    expected_bytes: int
    sha256: str | None
    bytes: int | None
    status: str
    """``ok``, ``missing``, ``changed`` (other content), or ``not a file`` (a link, a folder)."""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _read_manifest(root: Path, where: Path) -> dict[str, Any]:
    path = root / MANIFEST
    if path.is_symlink() or not path.is_file():
        raise BundleError(f"{where} is not an owntrain bundle: it holds no {MANIFEST}. "
                          "Pass a bundle folder or archive made by `owntrain fit` or `owntrain export`.")
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"{where}: {MANIFEST} is damaged ({exc}). Copy or export the bundle again.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{where} is not an owntrain bundle ({MANIFEST} does not say format {BUNDLE_FORMAT!r}).")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise BundleError(f"{where}: {MANIFEST} has no valid format_version (found {version!r}). Export the bundle again.")
    if version > FORMAT_VERSION:
        from owntrain import __version__

        raise BundleError(
            f"{where} is bundle format {version}, made by a newer owntrain "
            f"({manifest.get('owntrain_version', 'unknown version')}); this owntrain {__version__} reads bundle "
            f"formats up to {FORMAT_VERSION}. Upgrade owntrain on this machine (offline: pip install --no-index "
            "--find-links WHEELHOUSE --upgrade owntrain), or export the bundle with this owntrain version."
        )
    if manifest.get("digest") != manifest_digest(manifest):
        raise BundleError(
            f"{where}: {MANIFEST} was edited or damaged after export (its digest does not match its content). "
            "Copy the bundle again from the original, or export it again with `owntrain export`."
        )
    _check_file_list(manifest.get("files"), where)
    return manifest


def _check_file_list(files: Any, where: Path) -> None:
    if not isinstance(files, dict):
        raise BundleError(f"{where}: {MANIFEST} lists no files. Export the bundle again.")
    for name, entry in files.items():
        if (not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith(".")
                or name == MANIFEST):
            raise BundleError(f"{where}: {MANIFEST} lists an unacceptable file name {name!r}. Export the bundle again.")
        if (not isinstance(entry, dict) or not _HEX64.match(str(entry.get("sha256", "")))
                or not isinstance(entry.get("bytes"), int)):
            raise BundleError(f"{where}: {MANIFEST} has no valid SHA-256 and size for {name}. Export the bundle again.")
    missing = [n for n in REQUIRED_FILES if n not in files]
    if missing:
        raise BundleError(f"{where} is incomplete: {MANIFEST} does not list {', '.join(missing)}. "
                          "Export the bundle again with `owntrain export`.")


def _check_files(root: Path, manifest: Mapping[str, Any]) -> list[FileCheck]:
    checks = []
    for name, entry in sorted(manifest["files"].items()):
        path = root / name
        expected, size = str(entry["sha256"]), int(entry["bytes"])
        if not os.path.lexists(path):
            checks.append(FileCheck(name, expected, size, None, None, "missing"))
            continue
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            checks.append(FileCheck(name, expected, size, None, None, "not a file"))
            continue
        actual = sha256_file(path)
        status = "ok" if actual == expected and st.st_size == size else "changed"
        checks.append(FileCheck(name, expected, size, actual, st.st_size, status))
    return checks


def _unlisted(root: Path, manifest: Mapping[str, Any]) -> list[str]:
    listed = set(manifest["files"]) | {MANIFEST}
    return sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir() if p.name not in listed)


def _problems(checks: Sequence[FileCheck], where: Path) -> list[str]:
    out = []
    for c in checks:
        if c.status == "missing":
            out.append(f"{c.name} is missing from {where}")
        elif c.status == "not a file":
            out.append(f"{c.name} in {where} is not a plain file (a link or a folder)")
        elif c.status == "changed":
            out.append(f"{c.name} does not match its SHA-256 in {MANIFEST} (expected {c.expected_sha256[:12]}..., "
                       f"found {(c.sha256 or '')[:12]}..., {c.bytes:,} bytes instead of {c.expected_bytes:,})")
    return out


def _verification_error(where: Path, problems: Sequence[str]) -> BundleError:
    return BundleError(
        f"Bundle {where} failed verification: " + "; ".join(problems) + ". The bundle was changed, damaged or "
        "copied incompletely after export. Copy it again from the original, or export it again with `owntrain export`."
    )


def check_model_file(path: Path) -> list[str]:
    """Refuse a ``.keras`` file holding anything but Keras' own objects; return its layer class names.

    Checked before Keras sees the file: it must be a zip holding only ``config.json``,
    ``metadata.json``, ``model.weights.h5`` (and ``assets/``); every serialized object in the
    configuration must come from a ``keras`` module with no registered custom name, and none may
    be a Lambda layer or a serialized Python function. Keras' safe mode is a second line of defence.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            odd = [n for n in names if n not in KERAS_MEMBERS and not n.startswith("assets/")]
            if odd or "config.json" not in names:
                raise BundleError(f"{path.name} is not a plain Keras model file: it holds {', '.join(odd) or 'no config.json'}. "
                                  "Export the bundle again with `owntrain export`.")
            config = json.loads(zf.read("config.json").decode("utf-8"))
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError, ValueError, KeyError) as exc:
        raise BundleError(f"{path.name} is not a readable Keras model file ({exc}). Export the bundle again.") from None
    layers: list[str] = []
    for obj in _serialized_objects(config):
        cls, module, registered = obj.get("class_name"), obj.get("module"), obj.get("registered_name")
        if cls in REFUSED_CLASSES:
            raise BundleError(f"{path.name} holds a {cls} object, which would run arbitrary Python code; "
                              "owntrain refuses to load it. Only models trained by owntrain can be bundled.")
        if module is None:
            continue
        if not (module == "keras" or str(module).startswith("keras.")) or registered not in (None, cls):
            raise BundleError(f"{path.name} holds the custom object {registered or cls!r} from module {module!r}; "
                              "owntrain loads only Keras' built-in layers. Only models trained by owntrain can be bundled.")
        if str(module).startswith("keras.layers"):
            layers.append(str(cls))
    return layers


def _serialized_objects(node: Any) -> Iterator[dict[str, Any]]:
    """Every dict with a ``class_name`` anywhere in a Keras configuration."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "class_name" in item:
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _version_notes(made_with: Mapping[str, Any]) -> list[str]:
    here = installed_versions()
    notes = []
    for pkg in WARN_PACKAGES:
        theirs = made_with.get(pkg)
        if theirs and theirs != here.get(pkg):
            notes.append(f"the bundle was made with {pkg} {theirs}, this machine has {here.get(pkg)}")
    if notes:
        return ["; ".join(notes) + ". Predictions may differ slightly from the evaluation in the model card; "
                "install the bundle's versions to reproduce them exactly."]
    return []


# --------------------------------------------------------------------------- staging


def _stage(path: Path, tmp: Path) -> tuple[Path, str]:
    """A private copy of the bundle at ``path`` under ``tmp``: (its root folder, kind)."""
    if path.is_dir():
        root = tmp / "bundle"
        root.mkdir()
        src_manifest = path / MANIFEST
        if src_manifest.is_symlink():
            raise BundleError(f"{path}: {MANIFEST} is a link; a bundle holds only plain files. Export it again.")
        if src_manifest.is_file():
            shutil.copyfile(src_manifest, root / MANIFEST, follow_symlinks=False)
            manifest = _read_manifest(root, path)
            for name in manifest["files"]:
                src = path / name
                if src.is_symlink():  # kept as a link, so verification reports it and nothing reads through it
                    os.symlink(os.readlink(src), root / name)
                elif os.path.lexists(src) and stat.S_ISREG(os.lstat(src).st_mode):
                    shutil.copyfile(src, root / name, follow_symlinks=False)
        return root, "folder"
    if not path.exists():
        raise BundleError(f"No bundle at {path}. Train one with `owntrain fit` (it writes <workspace>/bundle), "
                          "or pass --bundle with a bundle folder or a .tar.gz/.zip made by `owntrain export`.")
    kind = archive_kind(path)
    if kind is None:
        raise BundleError(f"{path} is neither a bundle folder nor a bundle archive (.tar.gz, .tgz, .zip).")
    return unpack_archive(path, tmp / "unpacked"), kind


def _resolve(path: str | os.PathLike | None, workspace: str | os.PathLike | None) -> Path:
    if path is not None:
        return Path(path)
    from owntrain.workspace import Workspace

    return Workspace.at(workspace).bundle


# --------------------------------------------------------------------------- inspect (owntrain info)


@dataclass
class BundleReport:
    """What ``owntrain info`` shows: the bundle's card and whether every file matches its manifest."""

    path: Path
    kind: str                         # folder, tar.gz or zip
    size_bytes: int                   # of the folder's listed files, or of the archive file
    archive_sha256: str | None
    manifest: dict[str, Any]
    files: list[FileCheck]
    unlisted: list[str]
    problems: list[str]
    labels: dict[str, Any] = field(default_factory=dict)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    version_notes: list[str] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def fingerprint(self) -> str:
        return str(self.manifest.get("digest", ""))

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "kind": self.kind, "size_bytes": self.size_bytes,
            "archive_sha256": self.archive_sha256, "fingerprint": self.fingerprint, "ok": self.ok,
            "problems": self.problems, "unlisted": self.unlisted,
            "files": [c.__dict__ for c in self.files], "labels": self.labels, "preprocessing": self.preprocessing,
            "metrics": self.metrics, "manifest": self.manifest, "version_notes": self.version_notes,
            "layers": self.layers, "installed_versions": installed_versions(),
        }


def _parse_json_file(root: Path, name: str) -> Any:
    try:
        return json.loads((root / name).read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"{name} in the bundle is not readable JSON ({exc}). Export the bundle again.") from None


def inspect_bundle(path: str | os.PathLike | None = None, *, workspace: str | os.PathLike | None = None) -> BundleReport:
    """Verify a bundle (folder or archive) without loading the model, and gather its card.

    Raises BundleError when ``path`` is no bundle at all, an archive is unsafe, the manifest is
    edited or the format is newer than this owntrain reads; a file that does not match the
    manifest is reported in ``problems`` (``ok`` is then False). Imports no TensorFlow.
    """
    where = _resolve(path, workspace)
    with tempfile.TemporaryDirectory(prefix="owntrain-bundle-") as tmp:
        root, kind = _stage(where, Path(tmp))
        manifest = _read_manifest(root, where)
        checks = _check_files(root, manifest)
        problems = _problems(checks, where)
        report = BundleReport(
            path=where, kind=kind,
            size_bytes=where.stat().st_size if kind != "folder" else sum(c.bytes or 0 for c in checks),
            archive_sha256=sha256_file(where) if kind != "folder" else None,
            manifest=manifest, files=checks, unlisted=_unlisted(where if kind == "folder" else root, manifest),
            problems=problems, version_notes=_version_notes(manifest.get("versions") or {}),
        )
        ok = {c.name for c in checks if c.ok}
        for attr, name in (("labels", LABELS_FILE), ("preprocessing", PREPROCESSING_FILE), ("metrics", METRICS_FILE)):
            if name in ok:
                value = _parse_json_file(root, name)
                setattr(report, attr, value if isinstance(value, dict) else {})
        if MODEL_FILE in ok:
            try:
                report.layers = check_model_file(root / MODEL_FILE)
            except BundleError as exc:
                report.problems.append(str(exc))
        return report


# --------------------------------------------------------------------------- load


def _check_labels(record: Any) -> dict[str, Any]:
    labels = record.get("labels") if isinstance(record, dict) else None
    if (not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(x, str) for x in labels)
            or len(set(labels)) != len(labels)):
        raise BundleError(f"{LABELS_FILE} does not list two or more distinct class names. Export the bundle again.")
    threshold = record.get("threshold")
    if threshold is not None:
        if len(labels) != 2 or not isinstance(threshold, (int, float)) or not 0.0 <= float(threshold) <= 1.0:
            raise BundleError(f"{LABELS_FILE} has an invalid threshold {threshold!r}. Export the bundle again.")
        record["threshold"] = float(threshold)
    return record


def _check_preprocessing(pre: Any) -> tuple[dict[str, Any], "EncodingSettings"]:
    from dataclasses import fields as dc_fields

    from owntrain.encoding import EncodingSettings
    from owntrain.normalize import NORMALIZATION_VERSION

    if not isinstance(pre, dict):
        raise BundleError(f"{PREPROCESSING_FILE} should hold a JSON object. Export the bundle again.")
    norm = (pre.get("normalization") or {}).get("version") if isinstance(pre.get("normalization"), dict) else None
    if norm != NORMALIZATION_VERSION:
        raise BundleError(
            f"The bundle's texts were normalised with normalisation version {norm!r}; this owntrain applies "
            f"version {NORMALIZATION_VERSION}, so its predictions would not match. Score with the owntrain version "
            f"the bundle was made with ({'newer' if isinstance(norm, int) and norm > NORMALIZATION_VERSION else 'older'}), "
            "or train and export the model again with this one."
        )
    names = {f.name for f in dc_fields(EncodingSettings)}
    try:
        return pre, EncodingSettings.from_dict({k: v for k, v in pre.items() if k in names})
    except (InputError, TypeError) as exc:
        raise BundleError(f"{PREPROCESSING_FILE} holds unusable settings ({exc}). Export the bundle again.") from None


def _load_keras(path: Path, where: Path) -> "keras.Model":
    import keras

    check_model_file(path)
    try:
        return keras.models.load_model(str(path), safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises ValueError, TypeError, OSError... for unsafe or damaged files
        raise BundleError(f"The model in {where} could not be loaded safely ({type(exc).__name__}: "
                          f"{str(exc)[:300]}). Export the bundle again from its run.") from None


def load_bundle(path: str | os.PathLike | None = None, *, workspace: str | os.PathLike | None = None,
                warn: bool = True) -> Bundle:
    """Load and verify a bundle folder or archive (default: the workspace's ``bundle/``).

    Every listed file must match its SHA-256 in the manifest, the format version must be one this
    owntrain reads, and the model must hold only Keras' own layers; otherwise BundleError says what
    is wrong. Files the manifest does not list are never read (they are named in
    ``Bundle.warnings``). Different TensorFlow, Keras or spaCy versions than the bundle was made
    with give a :class:`BundleVersionWarning` (and a line in ``Bundle.warnings``) unless
    ``warn=False``.
    """
    where = _resolve(path, workspace)
    with tempfile.TemporaryDirectory(prefix="owntrain-bundle-") as tmp:
        root, kind = _stage(where, Path(tmp))
        manifest = _read_manifest(root, where)
        problems = _problems(_check_files(root, manifest), where)
        if problems:
            raise _verification_error(where, problems)
        notes = _version_notes(manifest.get("versions") or {})
        unlisted = _unlisted(where if kind == "folder" else root, manifest)
        from owntrain.encoding import encoder_from_dict

        labels = _check_labels(_parse_json_file(root, LABELS_FILE))
        pre, settings = _check_preprocessing(_parse_json_file(root, PREPROCESSING_FILE))
        metrics = _parse_json_file(root, METRICS_FILE)
        try:
            encoder = encoder_from_dict(_parse_json_file(root, VOCAB_FILE))
        except InputError as exc:
            raise BundleError(f"{VOCAB_FILE} in {where} is not a usable encoder ({exc}). Export the bundle again.") from None
        if encoder.kind != settings.encoder:
            raise BundleError(f"{VOCAB_FILE} holds a {encoder.kind!r} encoder but {PREPROCESSING_FILE} asks for "
                              f"{settings.encoder!r}. Export the bundle again.")
        model = _load_keras(root / MODEL_FILE, where)
    _check_model_fits(model, labels["labels"], settings.input_dim(encoder), where)
    messages = list(notes)
    if unlisted:
        messages.append(f"{where} holds files its manifest does not list; they were ignored: {', '.join(unlisted)}")
    if warn:
        for message in messages:
            warnings.warn(message, BundleVersionWarning if message in notes else UserWarning, stacklevel=2)
    return Bundle(path=where, kind=kind, manifest=manifest, labels=labels, preprocessing=pre,
                  metrics=metrics if isinstance(metrics, dict) else {}, settings=settings, encoder=encoder,
                  model=model, warnings=messages)


def _check_model_fits(model: "keras.Model", labels: Sequence[str], n_ids: int, where: Path) -> None:
    """The model's output matches the labels and its embedding takes every id the encoding emits (``n_ids``)."""
    outputs = int(model.output_shape[-1])
    expected = 1 if len(labels) == 2 else len(labels)
    if outputs != expected:
        raise BundleError(f"The model in {where} has {outputs} output(s) but the bundle lists {len(labels)} classes. "
                          "Export the bundle again.")
    for layer in model.layers:
        dim = getattr(layer, "input_dim", None)
        if layer.__class__.__name__ == "Embedding" and isinstance(dim, int) and dim < n_ids:
            raise BundleError(f"The model in {where} embeds {dim} ids but its encoding emits ids up to {n_ids - 1}. "
                              "Export the bundle again.")


# --------------------------------------------------------------------------- owntrain export


def export_archive(bundle_dir: str | os.PathLike, out_file: str | os.PathLike) -> Path:
    """Write a verified bundle folder as one archive file (``.tar.gz``/``.tgz`` or ``.zip``).

    The archive holds one folder (named after the archive) with the manifest and the files it
    lists, nothing else, with fixed timestamps and permissions: the same bundle gives the same
    archive bytes. Written under a temporary name and renamed (:func:`owntrain.archive.write_archive`).
    """
    return write_archive(bundle_dir, out_file, _verified_manifest)


def _verified_manifest(src: Path) -> dict[str, Any]:
    """The manifest of the bundle folder ``src``; BundleError when any file does not match it."""
    report = inspect_bundle(src)
    if not report.ok:
        raise BundleError(f"Refusing to archive {src}: " + "; ".join(report.problems))
    return report.manifest


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export` wrote: the archive, the bundle folder it was made from, and its identity."""

    archive: Path
    bundle_dir: Path | None           # the workspace bundle archived (None with --run: built in a temporary folder)
    run_id: str
    fingerprint: str
    archive_bytes: int
    archive_sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"archive": str(self.archive), "bundle_dir": None if self.bundle_dir is None else str(self.bundle_dir),
                "run_id": self.run_id, "fingerprint": self.fingerprint, "archive_bytes": self.archive_bytes,
                "archive_sha256": self.archive_sha256}


def _manifest_of(folder: Path) -> dict[str, Any] | None:
    try:
        value = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def export(workspace: str | os.PathLike | None = None, *, run: str | None = None,
           output: str | os.PathLike | None = None) -> ExportResult:
    """Write a workspace's bundle as one archive file (``owntrain export``).

    Without ``run``: the workspace's ``bundle/``, first (re)exported from the latest finished run
    when it is missing or was made from another run. With ``run``: that run's bundle, built in a
    temporary folder (the workspace's ``bundle/`` is left as it is). ``output`` defaults to
    ``owntrain-bundle-<run_id>.tar.gz`` in the current folder; ``.zip`` writes a zip archive.
    """
    from owntrain.train import list_runs, load_finished_run
    from owntrain.workspace import Workspace

    ws = Workspace.at(workspace)
    if run is not None:
        loaded = load_finished_run(ws, run)
        with tempfile.TemporaryDirectory(prefix="owntrain-export-") as tmp:
            folder = export_bundle(loaded.run_dir, Path(tmp) / "bundle")
            return _archive(folder, output, None)
    current = _manifest_of(ws.bundle)
    finished = [p for p in list_runs(ws) if p.model.is_file() and p.metrics.is_file()]
    if finished and (current is None or current.get("run_id") != finished[-1].run_id):
        export_bundle(finished[-1].root, ws.bundle)
    elif current is None:
        raise WorkspaceError(f"No bundle in {ws.bundle} and no finished run in {ws.runs}/ to make one from. "
                             "Train a model with `owntrain fit` first, or pass --workspace.")
    return _archive(ws.bundle, output, ws.bundle)


def _archive(folder: Path, output: str | os.PathLike | None, bundle_dir: Path | None) -> ExportResult:
    manifest = _manifest_of(folder) or {}
    run_id = str(manifest.get("run_id", "bundle"))
    out = Path(output) if output is not None else Path(f"owntrain-bundle-{run_id}.tar.gz")
    if out.is_dir():
        out = out / f"owntrain-bundle-{run_id}.tar.gz"
    export_archive(folder, out)
    return ExportResult(out, bundle_dir, run_id, str(manifest.get("digest", "")), out.stat().st_size, sha256_file(out))
