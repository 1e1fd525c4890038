#!/usr/bin/env python3
"""Writes a large synthetic binary-classification CSV for tapegrad's benchmarks.

    python3 tools/gen_big_csv.py OUT.csv [ROWS=1000000] [FEATURES=32] [SEED=1]

Columns f0 .. f{FEATURES-1} and `label`. Feature j is mean_j + scale_j * N(0, 1) with means
in [-5, 5] and scales in [0.1, 10] (so standardization matters), and the label is drawn from
a logistic model of the standardized features. The file is not committed: generate it on
demand (1M x 32 is about 300 MB). Values carry 6 significant digits.

Uses numpy when it is installed (seconds) and the standard library otherwise (a minute);
the two paths draw different (equally distributed) numbers for the same seed.
"""
import math
import random
import sys


def params(rng, d):
    means = [rng.uniform(-5, 5) for _ in range(d)]
    scales = [math.exp(rng.uniform(math.log(0.1), math.log(10))) for _ in range(d)]
    weights = [rng.gauss(0, 1.0 / math.sqrt(d)) * 2.0 for _ in range(d)]
    return means, scales, weights, rng.uniform(-0.5, 0.5)


def write_numpy(f, n, d, seed, means, scales, weights, bias):
    import numpy as np
    gen = np.random.default_rng(seed)
    chunk = 65536
    fmt = ",".join(["%.6g"] * d) + ",%d"
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        z = gen.standard_normal((m, d))
        logit = z @ np.asarray(weights) + bias
        y = (gen.random(m) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
        x = z * np.asarray(scales) + np.asarray(means)
        rows = np.concatenate([x, y[:, None]], axis=1)
        np.savetxt(f, rows, fmt=fmt)


def write_stdlib(f, n, d, rng, means, scales, weights, bias):
    for _ in range(n):
        z = [rng.gauss(0, 1) for _ in range(d)]
        logit = sum(w * v for w, v in zip(weights, z)) + bias
        y = 1 if rng.random() < 1.0 / (1.0 + math.exp(-logit)) else 0
        f.write(",".join("%.6g" % (m + s * v) for m, s, v in zip(means, scales, z)))
        f.write(",%d\n" % y)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
    d = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    rng = random.Random(seed)
    means, scales, weights, bias = params(rng, d)
    with open(out, "w", newline="\n") as f:
        f.write(",".join("f%d" % j for j in range(d)) + ",label\n")
        try:
            import numpy  # noqa: F401
            write_numpy(f, n, d, seed, means, scales, weights, bias)
        except ImportError:
            write_stdlib(f, n, d, rng, means, scales, weights, bias)


if __name__ == "__main__":
    main()
