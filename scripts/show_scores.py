"""Print the demo's scored reviews beside a reader's judgement (data/samples/new_expected.csv).

    python scripts/show_scores.py SCORED.csv EXPECTED.csv
"""

from __future__ import annotations

import csv
import sys


def main(scored_path: str, expected_path: str) -> None:
    with open(expected_path, encoding="utf-8", newline="") as fh:
        expected = {row["review_id"]: row["expected_label"] for row in csv.DictReader(fh)}
    with open(scored_path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    agree = clear = 0
    print(f"{'id':<5} {'predicted':<9} {'P(pos)':>6}  {'reader':<8} title")
    for row in rows:
        want = expected.get(row["review_id"], "?")
        got = row["predicted_label"]
        mark = ""
        if want in ("positive", "negative"):
            clear += 1
            agree += got == want
            mark = "" if got == want else "  <- disagrees"
        print(f"{row['review_id']:<5} {got:<9} {float(row['p_positive']):>6.2f}  {want:<8} {row['title'][:52]}{mark}")
    if clear:
        print(f"\nThe model agrees with the reader on {agree} of {clear} clearly positive or negative reviews "
              f"({agree / clear:.0%}); {len(rows) - clear} mixed reviews are shown for reading only.")


if __name__ == "__main__":
    main(*sys.argv[1:3])
