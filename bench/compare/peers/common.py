"""Shared plumbing for the peer scripts in bench/compare/peers/.

Every peer script is a small command-line program:

    /usr/bin/python3 peers/torch_kernels.py --check-ops BUILD/bench/compare/check_ops \
        [--threads K] [--smoke] [--reps N] [--only id,id] [--workdir DIR]

It first checks each workload against tapegrad on the same inputs (the inputs are written as
raw float32 files that `check_ops` reads), then times the peer's fastest form of it, and prints
one JSON object: {"script": ..., "threads": K, "results": [{"id", "seconds", ...}, ...]}.
`run.py` runs the scripts; they can also be run by hand.

Timing: `timeit` picks a loop count that runs for at least 0.2 s, then repeats that loop N times
and reports the median per call (the best is reported too). In --smoke mode each workload runs
once at its tiny size and the time is only informative.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import traceback

import numpy as np


class Missing(Exception):
    """Raised by a workload whose peer is not available (reported as missing, not failed)."""


def parse_args(description):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--check-ops", required=True, help="path of the check_ops helper")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads for the peer")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, one run per workload")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions (median reported)")
    p.add_argument("--only", default="", help="comma-separated workload ids (default: all)")
    p.add_argument("--workdir", default="", help="scratch directory for the check files")
    p.add_argument("--csv", default="", help="CSV file for the CSV/training workloads")
    p.add_argument("--tapegrad-cli", default="", help="the tapegrad command (training check)")
    p.add_argument("--libtorch", default="", help="the seed_libtorch peer binary, if built")
    return p.parse_args()


class Context:
    """What a workload function gets: sizes mode, thread count, helpers."""

    def __init__(self, args):
        self.args = args
        self.smoke = args.smoke
        self.threads = args.threads
        self.reps = 1 if args.smoke else max(1, args.reps)
        self._tmp = None
        self.workdir = args.workdir
        if not self.workdir:
            self._tmp = tempfile.TemporaryDirectory(prefix="tg-compare-")
            self.workdir = self._tmp.name
        os.makedirs(self.workdir, exist_ok=True)

    def path(self, name):
        return os.path.join(self.workdir, name)

    # ---- the tapegrad side of a check ----
    def tapegrad(self, *argv):
        """Runs check_ops with argv (numbers are converted); returns its stdout."""
        cmd = [self.args.check_ops] + [str(a) for a in argv]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise RuntimeError("check_ops %s failed (exit %d): %s"
                               % (argv[0], r.returncode, r.stderr.strip()))
        return r.stdout

    def save(self, name, array):
        """Writes a float32 array (numpy or torch) as raw little-endian floats; returns the path."""
        a = np.ascontiguousarray(to_numpy(array), dtype="<f4")
        p = self.path(name)
        a.tofile(p)
        return p

    def load(self, name, count, dtype="<f4"):
        a = np.fromfile(self.path(name), dtype=dtype)
        if a.size != count:
            raise RuntimeError("%s: expected %d values, found %d" % (name, count, a.size))
        return a

    def cleanup(self):
        if self._tmp is not None:
            self._tmp.cleanup()

    # ---- timing ----
    def time(self, fn, slow=False):
        """Median (and best) seconds per call of fn(). slow: fn takes seconds, so skip the
        warm-up and the loop-count search and time `reps` single calls (at least 3)."""
        if slow and not self.smoke:
            runs = []
            for _ in range(max(3, self.reps)):
                t0 = time.perf_counter()
                fn()
                runs.append(time.perf_counter() - t0)
            return {"seconds": statistics.median(runs), "best": min(runs), "reps": len(runs),
                    "number": 1}
        if self.smoke:
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            return {"seconds": dt, "best": dt, "reps": 1, "number": 1}
        fn()  # warm-up: first-touch, allocator, lazy thread pools
        t = timeit.Timer(fn)
        number, _ = t.autorange()
        runs = [x / number for x in t.repeat(repeat=self.reps, number=number)]
        return {"seconds": statistics.median(runs), "best": min(runs), "reps": self.reps,
                "number": number}


def to_numpy(a):
    if hasattr(a, "detach"):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def compare(what, got, want, rtol=0.0, atol=0.0, scale=None):
    """Element-wise |got - want| <= atol + rtol * |want| (scale: compare against max|want| *
    scale instead, for sums whose rounding grows with the magnitude of the whole result).
    Returns a check record; ok is False when any element is outside or shapes differ."""
    g = np.asarray(to_numpy(got), dtype=np.float64).ravel()
    w = np.asarray(to_numpy(want), dtype=np.float64).ravel()
    if g.shape != w.shape:
        return {"what": what, "ok": False, "detail": "sizes differ: %d vs %d" % (g.size, w.size)}
    if not (np.all(np.isfinite(g) == np.isfinite(w))):
        return {"what": what, "ok": False, "detail": "non-finite values differ"}
    fin = np.isfinite(w)
    diff = np.abs(g[fin] - w[fin])
    if scale is not None:
        bound = atol + scale * (float(np.max(np.abs(w[fin]))) if w[fin].size else 0.0)
        bad = int(np.count_nonzero(diff > bound))
    else:
        bound = atol + rtol * np.abs(w[fin])
        bad = int(np.count_nonzero(diff > bound))
    max_abs = float(np.max(diff)) if diff.size else 0.0
    denom = np.maximum(np.abs(w[fin]), 1e-30)
    max_rel = float(np.max(diff / denom)) if diff.size else 0.0
    rec = {"what": what, "ok": bad == 0, "n": int(g.size), "max_abs_err": max_abs,
           "max_rel_err": max_rel, "bad": bad}
    if bad:
        i = int(np.argmax(diff - bound))
        rec["detail"] = "%d of %d values outside tolerance; worst: got %r, want %r" % (
            bad, g.size, float(g[fin][i]), float(w[fin][i]))
    return rec


def main(description, workloads, setup=None):
    """workloads: list of (id, function(ctx) -> result dict); setup(ctx) runs first (imports,
    thread settings). Prints the JSON report."""
    args = parse_args(description)
    only = [s for s in args.only.split(",") if s]
    ctx = Context(args)
    results = []
    setup_error = None
    try:
        if setup is not None:
            setup(ctx)
    except ImportError as e:  # e.g. torch or sklearn not installed: every workload is missing
        setup_error = "%s: %s" % (type(e).__name__, e)
        workloads = []
    try:
        for wid, fn in workloads:
            if only and wid not in only:
                continue
            t0 = time.perf_counter()
            try:
                res = fn(ctx)
                res["id"] = wid
                checks = res.get("checks", [])
                res["check_ok"] = bool(checks) and all(c["ok"] for c in checks)
            except Missing as e:
                res = {"id": wid, "missing": str(e), "check_ok": False}
            except Exception as e:  # one workload failing must not hide the others
                res = {"id": wid, "error": "%s: %s" % (type(e).__name__, e),
                       "traceback": traceback.format_exc(), "check_ok": False}
            res["wall"] = time.perf_counter() - t0
            results.append(res)
    finally:
        ctx.cleanup()
    versions = dict(getattr(ctx, "versions", {}), numpy=np.__version__)
    out = {"script": os.path.basename(sys.argv[0]), "threads": args.threads,
           "smoke": args.smoke, "versions": versions, "results": results}
    if setup_error:
        out["setup_error"] = setup_error
    json.dump(out, sys.stdout, indent=1, default=_json_default)
    sys.stdout.write("\n")


def _json_default(o):
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, float) and not math.isfinite(o):
        return None
    raise TypeError(repr(o))


def use_torch(ctx):
    """setup= for the PyTorch scripts: ctx.torch with ctx.threads intra-op threads."""
    import torch
    torch.set_num_threads(max(1, ctx.threads))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set (only allowed once, before any inter-op work)
    ctx.torch = torch
    ctx.versions = {"torch": torch.__version__}
