#!/usr/bin/python3
"""pandas and scikit-learn mirrors of the CSV and training rows (tapegrad side: the `tapegrad`
command, timed by run.py).

    csv_parse   tapegrad train's seconds_load      pandas.read_csv(FILE)
    train_e2e   wall time of `tapegrad train FILE --label label --json --quiet`
                                                   read_csv, then make_pipeline(StandardScaler(),
                                                   LogisticRegression()).fit(X, y)
                                                   (lbfgs, C = 1, tol 1e-4, max_iter 100: the
                                                   defaults tapegrad train mirrors)
    train_fit   tapegrad train's seconds_train     the .fit(X, y) part alone

FILE comes from --csv (run.py writes it with tools/gen_big_csv.py: 1M rows x 32 features, or a
tiny one in --smoke). Checks: the table tg_csv_read returns (check_ops csv) equals pandas'
values rounded to float32 (within 2 float32 ulps: pandas parses to float64 first), and the
training log loss `tapegrad train` reaches is at most scikit-learn's (relative 1e-4)."""
import os
import subprocess
import json
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import numpy as np  # noqa: E402

LABEL = "label"


def setup(ctx):
    import pandas
    import sklearn
    from threadpoolctl import threadpool_limits
    ctx.pd = pandas
    ctx.limits = threadpool_limits(limits=max(1, ctx.threads))  # BLAS/OpenMP pools, kept
    ctx.versions = {"pandas": pandas.__version__, "sklearn": sklearn.__version__,
                    "numpy": np.__version__}
    if not ctx.args.csv:
        raise SystemExit("pandas_sklearn.py: --csv FILE is required")


def csv_parse(ctx):
    pd = ctx.pd
    path = ctx.args.csv
    out = ctx.tapegrad("csv", path, LABEL, ctx.path("csvX.bin"), ctx.path("csvy.bin"))
    rows, cols = (int(v) for v in out.split())
    X = ctx.load("csvX.bin", rows * cols)
    y = ctx.load("csvy.bin", rows)
    df = pd.read_csv(path)
    want_y = df.pop(LABEL).to_numpy(dtype=np.float32)
    want_X = df.to_numpy(dtype=np.float32).ravel()
    checks = [common.compare("features (%d x %d)" % (rows, cols), X, want_X,
                             rtol=2.5e-7, atol=1e-37),
              common.compare("labels", y, want_y)]
    res = ctx.time(lambda: pd.read_csv(path), slow=True)
    res.update(checks=checks, rows=rows, cols=cols, bytes=os.path.getsize(path),
               form="pandas.read_csv(FILE)")
    return res


def _fit(ctx):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    t0 = time.perf_counter()
    df = ctx.pd.read_csv(ctx.args.csv)
    y = df.pop(LABEL).to_numpy()
    X = df.to_numpy()
    t1 = time.perf_counter()
    model = make_pipeline(StandardScaler(), LogisticRegression())
    model.fit(X, y)
    t2 = time.perf_counter()
    return model, X, y, t1 - t0, t2 - t1


def _train_check(ctx, model, X, y):
    from sklearn.metrics import log_loss
    sk_loss = float(log_loss(y, model.predict_proba(X)[:, 1]))
    cli = ctx.args.tapegrad_cli
    if not cli:
        raise common.Missing("the tapegrad command is not built (--tapegrad-cli)")
    r = subprocess.run([cli, "train", ctx.args.csv, "--label", LABEL, "--json", "--quiet"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError("tapegrad train failed (exit %d): %s" % (r.returncode, r.stderr))
    tg = json.loads(r.stdout.strip().splitlines()[-1])
    tg_loss = float(tg["train_log_loss"])
    ok = tg_loss <= sk_loss * (1 + 1e-4) + 1e-9
    rec = {"what": "training log loss: tapegrad %.7f, scikit-learn %.7f" % (tg_loss, sk_loss),
           "ok": ok, "tapegrad_log_loss": tg_loss, "sklearn_log_loss": sk_loss,
           "max_abs_err": abs(tg_loss - sk_loss)}
    if not ok:
        rec["detail"] = "tapegrad stops at a higher training log loss than scikit-learn"
    n_iter = int(model[-1].n_iter_[0])
    return rec, n_iter


_train = {}


def train_runs(ctx):
    """Times the whole pandas + scikit-learn pipeline; train_e2e and train_fit share the runs."""
    if not _train:
        model, X, y, _, _ = _fit(ctx)
        check, n_iter = _train_check(ctx, model, X, y)
        runs = []

        def once():
            runs.append(_fit(ctx)[3:])

        t = ctx.time(once, slow=True)
        fits = sorted(r[1] for r in runs)
        _train.update(check=check, n_iter=n_iter, total=t,
                      fit={"seconds": fits[len(fits) // 2], "best": fits[0],
                           "reps": len(fits), "number": 1})
    return _train


def train_e2e(ctx):
    d = train_runs(ctx)
    res = dict(d["total"])
    res.update(checks=[d["check"]], sklearn_iterations=d["n_iter"],
               form="read_csv + StandardScaler + LogisticRegression().fit")
    return res


def train_fit(ctx):
    d = train_runs(ctx)
    res = dict(d["fit"])
    res.update(checks=[d["check"]], sklearn_iterations=d["n_iter"],
               form="make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)")
    return res


WORKLOADS = [("csv_parse", csv_parse), ("train_e2e", train_e2e), ("train_fit", train_fit)]

if __name__ == "__main__":
    common.main(__doc__, WORKLOADS, setup=setup)
