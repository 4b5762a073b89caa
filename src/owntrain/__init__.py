"""owntrain: train your own text classifier on your own labelled texts, on your own machines.

The public API mirrors the CLI, one function per command::

    import owntrain
    owntrain.ingest("reviews.csv", workspace="ws")
    run = owntrain.fit("ws", lang="de")
    owntrain.evaluate(workspace="ws")

Attributes load lazily, so ``import owntrain`` stays instant and imports no TensorFlow.
"""

from __future__ import annotations

from importlib import import_module

__version__ = "0.1.0"

_API = {
    "ingest": "owntrain.data",
    "fit": "owntrain.train",
    "evaluate": "owntrain.evaluate",
    "load_bundle": "owntrain.bundle",
    "score_file": "owntrain.score",
    "score_texts": "owntrain.score",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'owntrain' has no attribute {name!r}")
