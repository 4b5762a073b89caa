"""Small file helpers shared across owntrain: a file's SHA-256, the copy chunk size and stale temporaries.

A write that must not leave half a file goes to ``.<name>.tmp-<pid>-<hex>`` beside its target and
is renamed into place; a temporary left by an owntrain process that was killed is removed the
next time something is written there (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_temporaries(path: Path) -> None:
    """Remove ``.<name>.tmp-<pid>-*`` files or folders beside ``path`` left by a killed owntrain process."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.tmp-(\d+)-[0-9a-f]+")
    try:
        siblings = list(path.parent.iterdir())
    except OSError:
        return
    for sibling in siblings:
        match = pattern.match(sibling.name)
        if match and int(match.group(1)) != os.getpid() and not _pid_alive(int(match.group(1))):
            if sibling.is_dir() and not sibling.is_symlink():
                shutil.rmtree(sibling, ignore_errors=True)
            else:
                sibling.unlink(missing_ok=True)
