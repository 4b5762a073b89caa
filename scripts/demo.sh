#!/usr/bin/env bash
# Set up .venv if needed, then run the whole user path on the German sample reviews:
# ingest -> fit -> score, in a fresh workspace under ./demo-workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
OT=.venv/bin/owntrain
WS=demo-workspace
rm -rf "$WS"
echo "== owntrain ingest data/samples/reviews.csv"
$OT ingest data/samples/reviews.csv --text-col title,pros,cons,suggestions --workspace "$WS"
echo
# 344 training texts are far fewer than the 25,000 of IMDB: more, smaller passes let it learn
# (with the default batch of 256 an epoch would be two steps).
FIT_ARGS="${DEMO_FIT_ARGS:---epochs 30 --patience 4 --batch-size 16}"
echo "== owntrain fit --lang de $FIT_ARGS"
$OT fit --lang de --workspace "$WS" $FIT_ARGS
if $OT score --help >/dev/null 2>&1; then
    echo
    echo "== owntrain score data/samples/new.csv"
    $OT score data/samples/new.csv --text-col title,pros,cons,suggestions --workspace "$WS" -o "$WS/new_scored.csv"
    .venv/bin/python scripts/show_scores.py "$WS/new_scored.csv" data/samples/new_expected.csv
fi
