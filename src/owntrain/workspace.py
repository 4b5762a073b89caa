"""Where each step reads and writes: the workspace folder (default ``./owntrain-workspace``).

```
owntrain-workspace/
  dataset.parquet        normalised rows: text, text_original, label, split, source_file, source_line
  ingest_report.json     counts, label distribution per split, lengths, duplicates, rejects
  rejects.csv            every rejected row with its source file, line and reason
  cache/                 encoded sequences reused between fits of the same data and settings
  runs/<run_id>/         checkpoints, TensorBoard logs, history.json, metrics.json
  bundle/                the latest exported bundle (what `score` uses by default)
```
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from owntrain.config import DEFAULTS
from owntrain.errors import WorkspaceError


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def at(cls, root: str | os.PathLike | None = None) -> "Workspace":
        return cls(Path(root) if root is not None else DEFAULTS.workspace)

    @property
    def dataset(self) -> Path:
        return self.root / "dataset.parquet"

    @property
    def report(self) -> Path:
        return self.root / "ingest_report.json"

    @property
    def rejects(self) -> Path:
        return self.root / "rejects.csv"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def bundle(self) -> Path:
        return self.root / "bundle"

    def require_dataset(self) -> Path:
        if not self.dataset.is_file():
            raise WorkspaceError(
                f"No ingested dataset in {self.root}/ (expected {self.dataset.name}). "
                "Run `owntrain ingest FILE` first, or pass --workspace to point at another workspace."
            )
        return self.dataset

    def read_report(self) -> dict[str, Any]:
        self.require_dataset()
        try:
            return json.loads(self.report.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise WorkspaceError(
                f"The ingest report {self.report} is missing or unreadable ({exc}). Run `owntrain ingest` again."
            ) from None

    def labels(self) -> list[str]:
        """Class names in class-index order (index 1 is the positive class for two labels)."""
        return list(self.read_report()["labels"])


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file under a temporary name, then rename, so a killed process never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    mode = "wb" if isinstance(data, bytes) else "w"
    kwargs = {} if isinstance(data, bytes) else {"encoding": "utf-8"}
    with open(tmp, mode, **kwargs) as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")
