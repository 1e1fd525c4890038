#!/usr/bin/env python3
"""Writes data/placement.csv: a SYNTHETIC student-placement data set for tapegrad's examples.

Nothing here comes from real students. The seed notebook's example is "cgpa = 6.7,
placement = 0"; this script invents a plausible table around it so `tapegrad train` has
something to learn out of the box. Each row is one made-up student:

    cgpa           grade average on a 10-point scale (5.0 .. 10.0, two decimals)
    iq             IQ-like aptitude score (integer, mean 100, sd 15)
    internships    internships completed (0 .. 3)
    projects       projects completed (0 .. 6)
    communication  soft-skills rating (1.0 .. 10.0, one decimal)
    placement      1 if placed, 0 if not (the label)

The label is drawn from a logistic model of the features plus noise, so a logistic
regression fits it well but not perfectly. The standard library only and a fixed seed:
running the script again rewrites the same file byte for byte.

    python3 data/gen_placement.py [OUT.csv] [ROWS]
"""
import math
import random
import sys

SEED = 20240607
ROWS = 1000


def clamp(v, lo, hi):
    return max(lo, min(hi, v))


def student(rng):
    cgpa = clamp(rng.gauss(7.2, 1.0), 5.0, 10.0)
    # aptitude is correlated with grades, as in most real tables of this kind
    iq = round(clamp(100 + 15 * (0.5 * (cgpa - 7.2) / 1.0 + math.sqrt(0.75) * rng.gauss(0, 1)), 60, 160))
    internships = min(3, sum(rng.random() < 0.3 for _ in range(4)))
    projects = min(6, sum(rng.random() < 0.35 for _ in range(7)))
    communication = clamp(rng.gauss(6.0, 1.8), 1.0, 10.0)
    logit = (-1.0 + 1.6 * (cgpa - 7.2) + 0.035 * (iq - 100) + 0.55 * internships
             + 0.25 * (projects - 2.4) + 0.3 * (communication - 6.0))
    placed = 1 if rng.random() < 1.0 / (1.0 + math.exp(-logit)) else 0
    return "%.2f,%d,%d,%d,%.1f,%d" % (cgpa, iq, internships, projects, communication, placed)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "data/placement.csv"
    rows = int(sys.argv[2]) if len(sys.argv) > 2 else ROWS
    rng = random.Random(SEED)
    with open(out, "w", newline="\n") as f:
        f.write("cgpa,iq,internships,projects,communication,placement\n")
        for _ in range(rows):
            f.write(student(rng) + "\n")


if __name__ == "__main__":
    main()
