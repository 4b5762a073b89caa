"""Write a large labelled CSV for scale tests of ingest and score (nothing is read from outside).

    python bench/make_big_csv.py /tmp/big.csv --rows 1000000 --words 170

Texts are random word sequences drawn from a fixed German/English word list with a seeded
generator, ~1 KB each by default (so 1,000,000 rows is about 1 GB); labels follow a few cue words,
so a model can learn something from them.
"""

from __future__ import annotations

import argparse
import csv
import random

WORDS = ("der die das und ist nicht ein eine zu mit auf für von im den es sich auch an werden aus er hat "
         "the a and of to is in it that was this for with as on but film movie good bad team chef gehalt "
         "kollegen arbeit homeoffice überstunden weiterbildung kantine büro projekt kunden urlaub schicht "
         "stimmung führung respekt druck lob kritik zukunft karriere flexibel gerecht stressig ruhig").split()
POSITIVE = "super toll fair großartig hilfsbereit excellent wonderful".split()
NEGATIVE = "schlecht unfair chaotisch mies katastrophal terrible awful".split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--words", type=int, default=170, help="mean words per text")
    parser.add_argument("--unlabelled", action="store_true", help="write id,text only (for score)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with open(args.out, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text"] if args.unlabelled else ["id", "text", "label"])
        for i in range(args.rows):
            positive = rng.random() < 0.5
            n = max(3, int(rng.expovariate(1 / args.words)))
            words = rng.choices(WORDS, k=n)
            cues = POSITIVE if positive else NEGATIVE
            for _ in range(1 + n // 40):
                words.insert(rng.randrange(len(words) + 1), rng.choice(cues))
            text = " ".join(words)
            writer.writerow([i, text] if args.unlabelled else [i, text, "positive" if positive else "negative"])


if __name__ == "__main__":
    main()
