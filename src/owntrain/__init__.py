"""owntrain: train your own text classifier on your own labelled texts, on your own machines."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "ingest"]


def __getattr__(name: str):
    # Lazy public API: importing owntrain stays instant; heavy modules load on first use.
    if name == "ingest":
        from owntrain.data import ingest

        return ingest
    raise AttributeError(f"module 'owntrain' has no attribute {name!r}")
