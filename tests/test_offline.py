"""Air-gapped scoring: `owntrain score` with the network cut and the workspace deleted, only the bundle left."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import synthetic_rows, write_workspace

TINY = dict(max_len=40, embedding_dim=8, units=8, epochs=1, batch_size=32, learning_rate=1e-2, min_df=1, ngram_buckets=256)

# Inside the namespace only a loopback device exists, and it is down: any connection must fail.
NO_NETWORK_CHECK = (
    "import socket, sys\n"
    "for host in ('10.255.255.1', '1.1.1.1', '127.0.0.1'):\n"
    "    s = socket.socket(); s.settimeout(3)\n"
    "    try:\n"
    "        s.connect((host, 80))\n"
    "    except OSError:\n"
    "        continue\n"
    "    sys.exit(f'connected to {host}: the network is not cut')\n"
)


def _unshare_reason() -> str | None:
    """None when `unshare -n` can make a network namespace here, else why not."""
    if shutil.which("unshare") is None:
        return "the unshare command is not installed (util-linux)"
    try:
        proc = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare -n could not run ({exc})"
    if proc.returncode != 0:
        return (f"unshare -n is not permitted here ({proc.stderr.strip() or proc.returncode}); it needs root or "
                "unprivileged user namespaces")
    return None


def test_score_runs_with_no_network_and_no_workspace(tmp_path: Path):
    reason = _unshare_reason()
    if reason:
        pytest.skip(reason)
    from owntrain.bundle import export_archive, export_bundle, load_bundle
    from owntrain.train import fit

    # Train and export on the "connected" side.
    ws = write_workspace(tmp_path / "ws", synthetic_rows(("neg", "pos"), 200, seed=4), ("neg", "pos"), seed=4)
    carry = tmp_path / "carry"
    carry.mkdir()
    archive = export_archive(export_bundle(fit(ws, **TINY), ws / "bundle"), carry / "model.tar.gz")
    texts = ["a great and wonderful film", "", "awful boring plot", "dull"]
    expected = load_bundle(archive).predict(texts)
    shutil.rmtree(ws)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["carry"]
    pd.DataFrame({"id": [1, 2, 3, 4], "text": texts}).to_csv(carry / "new.csv", index=False)

    # Score on the "air-gapped" side: a new network namespace, an empty HOME, no workspace.
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.update(HOME=str(home), TF_CPP_MIN_LOG_LEVEL="2")
    check = subprocess.run(["unshare", "-n", sys.executable, "-c", NO_NETWORK_CHECK], capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    proc = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "owntrain", "score", "new.csv", "--bundle", "model.tar.gz",
         "-o", "scored.csv"],
        cwd=carry, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Scored 4 rows" in proc.stdout
    out = pd.read_csv(carry / "scored.csv", keep_default_na=False, na_values=[""])
    assert out["id"].tolist() == [1, 2, 3, 4]
    assert out["score_status"].tolist() == ["ok", "empty_text", "ok", "ok"]
    assert [x if isinstance(x, str) else None for x in out["predicted_label"]] == expected.labels
    assert not (carry / "owntrain-workspace").exists()  # scoring created no workspace either
