"""Errors a user can act on.

Library code raises these; only :mod:`owntrain.cli` turns them into a message on stderr and an
exit code. Each message says what happened, what was expected and how to fix it.
"""

from __future__ import annotations


class OwntrainError(Exception):
    """Base class for every error owntrain reports to a user (exit code 2 on the CLI)."""

    exit_code = 2


class InputError(OwntrainError):
    """A user's input file or argument cannot be used as given."""


class ColumnNotFoundError(InputError):
    """A text, label or split column is missing or cannot be detected."""


class EncodingError(InputError):
    """A file cannot be decoded with the chosen text encoding."""


class ValidationError(InputError):
    """The data is readable but unusable, e.g. too few rows or labels to split or train."""


class WorkspaceError(OwntrainError):
    """The workspace lacks what a step needs, e.g. `fit` before `ingest`."""


class LanguageError(OwntrainError):
    """A spaCy language is unknown or needs a package that is not installed."""


class BundleError(OwntrainError):
    """A bundle is incomplete, tampered with, or of an unsupported format."""


class OutputError(OwntrainError):
    """An output file cannot be written (full disk, no permission); nothing half-written is left."""
