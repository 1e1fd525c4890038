#!/usr/bin/python3
"""tapegrad against PyTorch 1.13, pandas and scikit-learn on one machine, in one run.

    /usr/bin/python3 bench/compare/run.py            full run: writes BENCHMARKS.md and
                                                     bench/compare/charts/*.svg (minutes)
    /usr/bin/python3 bench/compare/run.py --smoke    every workload once at tiny sizes; checks
                                                     that both sides run and agree (CI)

tapegrad's figures come from its Google Benchmark binaries (build/bench/bench_*) and, for the
CSV and end-to-end rows, from the `tapegrad train` command; the peers' from the scripts in
bench/compare/peers/, which first check that they compute the same numbers as tapegrad on the
same inputs (through the check_ops helper). Every workload runs at each thread count of
--threads: the process is pinned to that many CPUs, and OPENBLAS_NUM_THREADS, OMP_NUM_THREADS,
TAPEGRAD_NUM_THREADS and torch.set_num_threads are set to it. See bench/compare/README.md.

Exit status: 0 when everything that exists ran and agreed (rows that miss a target are marked
in the report, not failed); 1 when a check disagreed or a benchmark, peer or helper failed;
2 for bad usage. --strict also fails on missing binaries, benchmarks or peers.
"""
import argparse
import datetime
import html
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PEERS = os.path.join(HERE, "peers")
LABEL = "label"  # label column of tools/gen_big_csv.py's files
FULL_CSV = (1000000, 32)
SMOKE_CSV = (2000, 8)
MIB64 = (1 << 24) * 4  # bytes of 16M floats
X_BYTES = FULL_CSV[0] * FULL_CSV[1] * 4  # bytes of the 1M x 32 float32 matrix
# Read again and again, 16 MiB stays in the L3 of the machines this runs on but not in any L2:
# its best time is how fast one core reads when memory is not what limits it.
CACHED_READ_BYTES = 16 << 20


# ---------------------------------------------------------------------------------------------
# What is compared: one Row per workload. Google Benchmark names are canonical (no
# /real_time, /iterations:N suffixes); "{k}" stands for the thread count of the run.
# ---------------------------------------------------------------------------------------------
class Target:
    """A goal from the issues, evaluated at `threads` threads.

    kinds: time_max (tapegrad seconds <= value), speedup_min (peer / tapegrad >= value),
    speedup2_min (second peer / tapegrad), memcpy_frac_min (tapegrad's bandwidth, the `moved`
    bytes it reads plus writes per call over its seconds, against the bandwidth of the memcpy
    named by `memcpy`, which reads and writes its bytes: >= value), ref_frac_min (ref / tapegrad >= value), ref_ratio_max
    (tapegrad / ref <= value), scaling_min (ref at one thread / tapegrad >= value),
    throughput_min (bytes / tapegrad seconds >= value). threads="all": at the largest thread
    count of the run (every core), for goals stated on the command as a user types it."""

    def __init__(self, kind, value, text, threads=1, memcpy=None, moved=None):
        self.kind, self.value, self.text, self.threads = kind, value, text, threads
        self.memcpy, self.moved = memcpy, moved


class Row:
    def __init__(self, group, rid, label, tg, peer, peer_label, limit=None, targets=(),
                 ref=None, ref_label="", notes=(), when=None, peer2=None, peer2_label="",
                 also=()):
        self.group, self.id, self.label = group, rid, label
        self.tg = tg                # ("gb", binary, name) or ("cli", field)
        self.peer = peer            # (script, workload id)
        self.peer_label = peer_label
        self.peer2, self.peer2_label = peer2, peer2_label
        self.limit = limit          # (kind, amount, text): kind memcpy64 | memcpyX | flops
        self.targets = list(targets)
        self.ref, self.ref_label = ref, ref_label  # ("gb", binary, name) for ref_* targets
        self.notes = list(notes)    # (text, ("gb", binary, name)) extra figures to show
        self.also = list(also)      # ("gb", binary, name) run too, for a row's own notes
        self.when = when or (lambda k: True)


GROUPS = [("autograd", "Autograd overhead (scalar graphs)"),
          ("kernels", "Kernels: 16M float32 elements"),
          ("matmul", "Matrix products"),
          ("training", "Logistic regression: loss pass, CSV, training")]

PT = "PyTorch"


def _rows():
    rows = [
        Row("autograd", "seed_graph", "seed graph: x² → sin → backward",
            ("gb", "bench_core", "BM_seed_graph"), ("torch_autograd", "seed_graph"), PT,
            peer2=("torch_autograd", "seed_graph_libtorch"), peer2_label="libtorch",
            targets=[Target("time_max", 0.25e-6, "≤ 0.25 µs/iter"),
                     Target("speedup2_min", 40, "≥ 40× libtorch")]),
        Row("autograd", "seed_logistic_step",
            "seed logistic step: sigmoid(wx+b) → BCE → backward",
            ("gb", "bench_core", "BM_seed_logistic_step"), ("torch_autograd", "seed_logistic_step"),
            PT, peer2=("torch_autograd", "seed_logistic_step_libtorch"), peer2_label="libtorch"),
    ]
    for op, targets in (("sigmoid", [Target("memcpy_frac_min", 0.90, "≥ 90% of memcpy bandwidth",
                                            memcpy="memcpy64", moved=2 * MIB64),
                                     Target("speedup_min", 2.0, "≥ 2× PyTorch")]),
                        ("sin", [Target("speedup_min", 2.0, "≥ 2× PyTorch")]),
                        ("exp", [])):
        rows.append(Row("kernels", "%s_fwd" % op, "%s forward" % op,
                        ("gb", "bench_core", "BM_unary<tg_%s>/16777216" % op),
                        ("torch_kernels", "%s_fwd" % op), PT,
                        limit=("memcpy64", 1.0, "memcpy 64 MiB (read x, write y)"),
                        targets=targets,
                        notes=[("raw %s kernel" % op,
                                ("gb", "bench_kernels", "{isa}/%s/16M" % op))]))
    for op, targets in (("sigmoid", [Target("time_max", 16e-3, "≤ 16 ms"),
                                     Target("speedup_min", 4.0, "≥ 4× PyTorch")]),
                        ("sin", []), ("exp", [])):
        rows.append(Row("kernels", "%s_fwd_bwd" % op, "%s forward + backward through sum" % op,
                        ("gb", "bench_core", "BM_unary_fwd_bwd<tg_%s>/16777216" % op),
                        ("torch_kernels", "%s_fwd_bwd" % op), PT,
                        limit=("memcpy64", 1.0, "memcpy 64 MiB (read x, write x.grad)"),
                        targets=targets))
    rows.append(Row("kernels", "mean", "mean", ("gb", "bench_core", "BM_mean/16777216"),
                    ("torch_kernels", "mean"), PT,
                    limit=("read64", 1.0, "read 64 MiB")))
    rows.append(Row("kernels", "sin_threads", "sin kernel on the thread pool",
                    ("gb", "bench_kernels", "BM_sin_16M_threads/{k}"), ("torch_kernels", "sin_fwd"),
                    PT, limit=("memcpy64", 1.0, "memcpy 64 MiB"),
                    ref=("gb", "bench_kernels", "BM_sin_16M_threads/1"), ref_label="1 thread",
                    targets=[Target("scaling_min", 1.8, "2 threads ≥ 1.8× one thread",
                                    threads=2)],
                    when=lambda k: k > 1, also=[neg_threads(1), neg_threads("{k}")]))
    for n in (256, 1024, 2048):
        big = n >= 1024
        rows.append(Row("matmul", "mm_%d_fwd" % n, "matmul %d² forward" % n,
                        ("gb", "bench_matmul", "BM_matmul/%d" % n),
                        ("torch_matmul", "mm_%d_fwd" % n), PT,
                        limit=("flops", 2.0 * n ** 3, "peak FMA"),
                        ref=("gb", "bench_matmul", "BM_cblas_sgemm/%d" % n),
                        ref_label="raw cblas_sgemm",
                        targets=[Target("ref_frac_min", 0.97, "≥ 97% of raw cblas_sgemm")] if big
                        else []))
    for n in (256, 1024, 2048):
        big = n >= 1024
        rows.append(Row("matmul", "mm_%d_fwd_bwd" % n, "matmul %d² forward + backward" % n,
                        ("gb", "bench_matmul", "BM_matmul_fwd_bwd/%d" % n),
                        ("torch_matmul", "mm_%d_fwd_bwd" % n), PT,
                        limit=("flops", 6.0 * n ** 3, "peak FMA"),
                        ref=("gb", "bench_matmul", "BM_matmul/%d" % n), ref_label="forward",
                        targets=[Target("ref_ratio_max", 3.1, "≤ 3.1× forward")] if big else []))
    for (b, n), targets in (((4096, 16), [Target("speedup_min", 5.0, "≥ 5× PyTorch")]),
                            ((1024, 32), []),
                            ((256, 64), [Target("speedup_min", 1.5, "≥ 1.5× PyTorch")])):
        rows.append(Row("matmul", "bmm_%d_%d" % (b, n), "bmm %d × %d×%d" % (b, n, n),
                        ("gb", "bench_matmul", "BM_bmm/%d/%d" % (b, n)),
                        ("torch_matmul", "bmm_%d_%d" % (b, n)), PT,
                        limit=("flops", 2.0 * b * n ** 3, "peak FMA"), targets=targets))
    rows += [
        Row("training", "loss_grad", "fused BCE loss + gradient, 1M × 32",
            ("gb", "bench_logreg", "BM_fused_loss_grad/threads:{k}"), ("torch_logreg", "loss_grad"),
            PT, limit=("readX", 1.0, "read X (128 MB)"),
            targets=[Target("time_max", 3.5e-3, "≤ 3.5 ms"),
                     # The pass reads X once; a memcpy of X reads it and writes a copy, so
                     # the bandwidths compare 128 MB against 256 MB moved.
                     Target("memcpy_frac_min", 0.85,
                            "≥ 85% of memcpy bandwidth (X read once against a memcpy of X)",
                            memcpy="memcpyX", moved=X_BYTES)]),
        Row("training", "csv_parse", "CSV parse, 1M × 32 (tapegrad train's load)",
            ("cli", "seconds_load"), ("pandas_sklearn", "csv_parse"), "pandas.read_csv",
            targets=[Target("throughput_min", 1e9, "≥ 1 GB/s")]),
        # Issue 5 states this goal on `tapegrad train big.csv --label label` as typed, which runs
        # on every core by default; the one-thread figure stays in the table beside it.
        Row("training", "train_e2e", "end-to-end training, 1M × 32 CSV",
            ("cli", "wall"), ("pandas_sklearn", "train_e2e"), "pandas + scikit-learn",
            targets=[Target("time_max", 0.4, "≤ 0.4 s (default threads: all cores)",
                            threads="all")]),
        Row("training", "train_fit", "training only (data in memory)",
            ("cli", "seconds_train"), ("pandas_sklearn", "train_fit"), "scikit-learn fit"),
    ]
    return rows


def neg_threads(k):
    """neg across the thread pool at k threads (1, or "{k}" for a row's own): sin's loop (its
    chunks, prefetches and streaming stores) without the arithmetic."""
    return ("gb", "bench_kernels", "BM_neg_16M_threads/%s" % k)


ROWS = _rows()
# Single-threaded memcpy from the benchmark binaries (used for the limits at 1 thread).
MEMCPY_GB = {"memcpy64": ("bench_kernels", "BM_memcpy"), "memcpyX": ("bench_logreg", "BM_memcpy")}
MEMCPY_BYTES = {"memcpy64": MIB64, "memcpyX": X_BYTES, "read64": MIB64, "readX": X_BYTES}
MEMCPY_TEXT = {"memcpy64": "memcpy 64 MiB", "memcpyX": "memcpy of X (128 MB)"}


# ---------------------------------------------------------------------------------------------
# Small utilities
# ---------------------------------------------------------------------------------------------
def log(msg):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def canon(name):
    return re.sub(r"/(real_time|manual_time|process_time|iterations:\d+|repeats:\d+)", "", name)


def ere_escape(s):
    return re.sub(r"([.\[\]{}()*+?^$|\\])", r"\\\1", s)


def fmt_time(s):
    if s is None or not math.isfinite(s):
        return "—"
    if s < 1e-3:
        return "%.3g µs" % (s * 1e6)
    if s < 1.0:
        return "%.3g ms" % (s * 1e3)
    return "%.3g s" % s


def fmt_ratio(r):
    if r is None or not math.isfinite(r):
        return "—"
    return "%.3g×" % r


def median(xs):
    return statistics.median(xs) if xs else None


def run_cmd(cmd, env=None, cpus=None, timeout=None):
    """Runs cmd pinned to cpus; returns CompletedProcess (text)."""
    def pin():
        if cpus:
            os.sched_setaffinity(0, cpus)
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env, preexec_fn=pin, timeout=timeout)


def tail(text, n=6):
    lines = [l for l in (text or "").strip().splitlines() if l.strip()]
    return " | ".join(lines[-n:])


# ---------------------------------------------------------------------------------------------
# Helpers: check_ops and probe (CMake builds them into BUILD/bench/compare/; otherwise they are
# compiled here against BUILD/libtapegrad.a), and the optional libtorch peer.
# ---------------------------------------------------------------------------------------------
def _stale(binary, deps):
    if not os.path.exists(binary):
        return True
    t = os.path.getmtime(binary)
    return any(os.path.exists(d) and os.path.getmtime(d) > t for d in deps)


def _pkg(args):
    r = subprocess.run(["pkg-config"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError("pkg-config %s: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout.split()


def _static_link_flags(build):
    """What linking BUILD/libtapegrad.a needs: read from the build's tapegrad.pc
    (Requires.private, Libs.private), so new dependencies are picked up."""
    requires, libs = ["sleef", "openblas", "libcjson"], ["-lpthread", "-lm"]
    pc = os.path.join(build, "tapegrad.pc")
    if os.path.exists(pc):
        with open(pc) as f:
            for line in f:
                key, _, val = line.partition(":")
                if key.strip() == "Requires.private":
                    requires = val.replace(",", " ").split()
                elif key.strip() == "Libs.private":
                    libs = val.split()
    return _pkg(["--libs"] + requires) + libs


def find_helpers(build, want_libtorch):
    """Returns {name: path or None} and {name: error text}."""
    out, errors = {}, {}
    cmake_dir = os.path.join(build, "bench", "compare")
    own_dir = os.path.join(build, "bench-compare-helpers")
    cc = os.environ.get("CC") or "cc"
    lib = os.path.join(build, "libtapegrad.a")
    specs = {
        "check_ops": (["check_ops.c"], lambda src, dst: [cc, "-std=c11", "-O2", "-I",
                      os.path.join(REPO, "include")] + _pkg(["--cflags", "openblas"]) +
                      [src, "-o", dst, lib] + _static_link_flags(build), [lib]),
        "probe": (["probe.c"], lambda src, dst: [cc, "-std=c11", "-O2", src, "-o", dst,
                                                  "-lpthread"], []),
    }
    for name, (srcs, cmd, deps) in specs.items():
        src = os.path.join(HERE, srcs[0])
        built = os.path.join(cmake_dir, name)
        if os.path.exists(built) and not _stale(built, [src]):
            out[name] = built
            continue
        dst = os.path.join(own_dir, name)
        try:
            if name == "check_ops" and not os.path.exists(lib):
                raise RuntimeError("%s not built" % lib)
            if _stale(dst, [src] + deps):
                os.makedirs(own_dir, exist_ok=True)
                argv = cmd(src, dst)
                log("building %s: %s" % (name, " ".join(argv)))
                r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                if r.returncode != 0:
                    raise RuntimeError(tail(r.stderr, 10))
            out[name] = dst
        except (RuntimeError, OSError) as e:
            out[name] = None
            errors[name] = str(e)
    # libtorch peer: CMake (-DTAPEGRAD_COMPARE_LIBTORCH=ON), a previous run, or built now.
    src = os.path.join(PEERS, "seed_libtorch.cc")
    out["seed_libtorch"] = None
    for cand in (os.path.join(cmake_dir, "seed_libtorch"), os.path.join(own_dir, "seed_libtorch")):
        if os.path.exists(cand) and not _stale(cand, [src]):
            out["seed_libtorch"] = cand
            break
    if out["seed_libtorch"] is None:
        if want_libtorch:
            inc = "/usr/include/torch/csrc/api/include"
            cxx = os.environ.get("CXX") or "c++"
            if not os.path.isdir(inc):
                errors["seed_libtorch"] = "libtorch headers not found " \
                                          "(apt-get install libtorch-dev)"
            else:
                dst = os.path.join(own_dir, "seed_libtorch")
                os.makedirs(own_dir, exist_ok=True)
                argv = [cxx, "-O2", "-std=c++17", "-I", inc, src, "-o", dst, "-ltorch",
                        "-ltorch_cpu", "-lc10"]
                log("building seed_libtorch (about 30 s): %s" % " ".join(argv))
                r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                if r.returncode == 0:
                    out["seed_libtorch"] = dst
                else:
                    errors["seed_libtorch"] = tail(r.stderr, 10)
        else:
            errors["seed_libtorch"] = "not built (--smoke does not spend the 30 s compile; " \
                                      "the full run builds it)"
    return out, errors


# ---------------------------------------------------------------------------------------------
# Running things
# ---------------------------------------------------------------------------------------------
class Runner:
    def __init__(self, args):
        self.args = args
        self.smoke = args.smoke
        self.build = os.path.abspath(args.build)
        self.cpus = sorted(os.sched_getaffinity(0))
        self.failures = []   # (what, message): make the exit status 1
        self.missing = []    # (what, message)
        self._lists = {}

    def env(self, k):
        e = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                  "TAPEGRAD_NUM_THREADS"):
            e[v] = str(k)
        if self.args.openblas_env_unset:
            e.pop("OPENBLAS_CORETYPE", None)
            e.pop("OPENBLAS_L2_SIZE", None)
        return e

    def pinned(self, k):
        return self.cpus[:k]

    # ---- Google Benchmark ----
    def gb_path(self, binary):
        return os.path.join(self.build, "bench", binary)

    def gb_list(self, binary):
        """canonical name -> full name, or None when the binary is missing."""
        if binary not in self._lists:
            path = self.gb_path(binary)
            if not os.access(path, os.X_OK):
                self._lists[binary] = None
            else:
                r = run_cmd([path, "--benchmark_list_tests"], timeout=120)
                if r.returncode != 0:
                    self.failures.append((binary, "--benchmark_list_tests failed: " +
                                          tail(r.stderr)))
                    self._lists[binary] = None
                else:
                    names = [l.strip() for l in r.stdout.splitlines() if l.strip()]
                    self._lists[binary] = {canon(n): n for n in names}
        return self._lists[binary]

    def gb_run(self, binary, names, k):
        """Runs the named (canonical) benchmarks at k threads; canonical name -> record."""
        listed = self.gb_list(binary)
        out = {}
        if listed is None:
            return out
        full = [listed[n] for n in names if n in listed]
        if not full:
            return out
        reps = 1 if self.smoke else self.args.reps
        argv = [self.gb_path(binary), "--benchmark_format=json",
                "--benchmark_filter=^(%s)$" % "|".join(ere_escape(n) for n in full),
                "--benchmark_repetitions=%d" % reps,
                "--benchmark_report_aggregates_only=true",
                # Rows that are ratios of two benchmarks of one binary (the tensor API against
                # raw cblas_sgemm, forward + backward against forward) need both sides to see
                # the same drift of the shared machine, not its state minutes apart.
                "--benchmark_enable_random_interleaving=true"]
        if self.smoke:
            argv.append("--benchmark_min_time=0.000001")
        log("k=%d %s: %d benchmarks x %d repetitions" % (k, binary, len(full), reps))
        r = run_cmd(argv, env=self.env(k), cpus=self.pinned(k))
        try:
            data = json.loads(r.stdout)
        except ValueError:
            data = {"benchmarks": []}
        if r.returncode != 0:
            msg = "%s exited with %d: %s" % (binary, r.returncode, tail(r.stderr))
            self.failures.append((binary, msg))
        scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
        for b in data.get("benchmarks", []):
            if b.get("run_type") == "aggregate" and b.get("aggregate_name") != "median":
                continue
            name = canon(b.get("run_name", b.get("name", "")))
            if b.get("error_occurred"):
                out[name] = {"error": b.get("error_message", "error")}
                continue
            rec = {"seconds": b["real_time"] * scale.get(b.get("time_unit", "ns"), 1e-9),
                   "iterations": b.get("iterations"), "label": b.get("label", "")}
            rec["counters"] = {key: v for key, v in b.items() if isinstance(v, (int, float))
                               and key not in ("real_time", "cpu_time", "iterations",
                                               "family_index", "per_family_instance_index",
                                               "repetitions", "repetition_index", "threads")}
            out[name] = rec
        for n in full:
            c = canon(n)
            if c not in out:
                out[c] = {"error": "ran but reported no result%s" %
                          (" (%s)" % tail(r.stderr, 3) if r.stderr.strip() else "")}
        return out

    # ---- probe ----
    def probe(self, path, k):
        res = {}
        if not path:
            return res
        secs = "0.1" if self.smoke else "2"
        r = run_cmd([path, "fma", str(k), secs], cpus=self.pinned(k))
        if r.returncode == 0:
            res["fma"] = json.loads(r.stdout)
        else:
            self.failures.append(("probe fma", tail(r.stderr)))
        reps = "3" if self.smoke else "21"
        for key, mode, nbytes in (("memcpy64", "memcpy", MIB64), ("memcpyX", "memcpy", X_BYTES),
                                  ("read64", "read", MIB64), ("readX", "read", X_BYTES),
                                  ("read_cached", "read", CACHED_READ_BYTES)):
            if self.smoke:
                nbytes = 1 << 20
            r = run_cmd([path, mode, str(k), str(nbytes), reps], cpus=self.pinned(k))
            if r.returncode == 0:
                res[key] = json.loads(r.stdout)
            else:
                self.failures.append(("probe memcpy", tail(r.stderr)))
        if k > 1:
            res["memcpy64_scaling"] = self.memcpy_scaling(path, k)
        return res

    def memcpy_scaling(self, path, k):
        """Median of (1-thread time / k-thread time) of a 64 MiB memcpy over pairs run back to
        back: the machine's bandwidth drifts over minutes, so the two sides of a ratio must be
        measured side by side, not at the 1-thread and k-thread phases of the run."""
        nbytes = 1 << 20 if self.smoke else MIB64
        ratios = []
        for _ in range(1 if self.smoke else 5):
            t = {}
            for kk in (1, k):
                r = run_cmd([path, "memcpy", str(kk), str(nbytes), "5"], cpus=self.pinned(kk))
                if r.returncode != 0:
                    self.failures.append(("probe memcpy", tail(r.stderr)))
                    return None
                t[kk] = json.loads(r.stdout)["median_s"]
            ratios.append(t[1] / t[k])
        return statistics.median(ratios)

    # ---- the tapegrad command ----
    def cli(self, k, csv):
        path = os.path.join(self.build, "tools", "cli", "tapegrad")
        if not os.access(path, os.X_OK):
            return {"missing": "%s not built" % path}
        if not csv:
            return {"missing": "no CSV file (tools/gen_big_csv.py missing?)"}
        argv = [path, "train", csv, "--label", LABEL, "--json", "--quiet", "--threads", str(k)]
        reps = 1 if self.smoke else max(3, self.args.reps)
        runs = []
        log("k=%d tapegrad train: %d runs" % (k, reps))
        for i in range(reps + (0 if self.smoke else 1)):  # full: one warm-up run first
            t0 = time.perf_counter()
            r = run_cmd(argv, env=self.env(k), cpus=self.pinned(k))
            wall = time.perf_counter() - t0
            if r.returncode != 0:
                msg = "tapegrad train exited with %d: %s" % (r.returncode, tail(r.stderr))
                self.failures.append(("tapegrad train", msg))
                return {"error": msg}
            try:
                d = json.loads(r.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                msg = "tapegrad train --json printed no JSON: %s" % tail(r.stdout)
                self.failures.append(("tapegrad train", msg))
                return {"error": msg}
            d["wall"] = wall
            if self.smoke or i > 0:
                runs.append(d)
        out = {f: median([d[f] for d in runs]) for f in ("wall", "seconds_load", "seconds_train")}
        out.update({f: runs[-1].get(f) for f in ("train_log_loss", "iterations", "threads", "isa",
                                                 "rows", "features")})
        return out

    # ---- peers ----
    def peer(self, script, ids, k, helpers, csv, workdir):
        argv = [self.args.python, os.path.join(PEERS, script + ".py"),
                "--check-ops", helpers["check_ops"] or "/nonexistent/check_ops",
                "--threads", str(k), "--reps", str(self.args.reps), "--only", ",".join(ids),
                "--workdir", workdir]
        if self.smoke:
            argv.append("--smoke")
        if csv:
            argv += ["--csv", csv]
        cli = os.path.join(self.build, "tools", "cli", "tapegrad")
        if os.access(cli, os.X_OK):
            argv += ["--tapegrad-cli", cli]
        if helpers.get("seed_libtorch"):
            argv += ["--libtorch", helpers["seed_libtorch"]]
        log("k=%d peers/%s.py: %s" % (k, script, ", ".join(ids)))
        r = run_cmd(argv, env=self.env(k), cpus=self.pinned(k))
        try:
            data = json.loads(r.stdout)
        except ValueError:
            msg = "peers/%s.py exited with %d: %s" % (script, r.returncode, tail(r.stderr))
            self.failures.append((script, msg))
            return {"error": msg, "results": {}}
        data["results"] = {res["id"]: res for res in data.get("results", [])}
        return data


# ---------------------------------------------------------------------------------------------
# Machine description
# ---------------------------------------------------------------------------------------------
def cpu_info():
    info = {"model": platform.processor() or platform.machine(), "flags": set()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                key, val = key.strip(), val.strip()
                if key == "model name" and "model_name" not in info:
                    info["model_name"] = val
                elif key == "cpu family" and "family" not in info:
                    info["family"] = int(val)
                elif key == "model" and "model_num" not in info and val.isdigit():
                    info["model_num"] = int(val)
                elif key == "vendor_id":
                    info["vendor"] = val
                elif key in ("flags", "Features") and not info["flags"]:
                    info["flags"] = set(val.split())
    except OSError:
        pass
    info["model"] = info.get("model_name", info["model"])
    fam, mod, fl = info.get("family"), info.get("model_num"), info["flags"]
    info["family_model"] = "family %d model %d" % (fam, mod) if fam is not None and \
        mod is not None else ""
    uarch = ""
    if info.get("vendor") == "AuthenticAMD" and fam is not None:
        if fam == 0x17:
            uarch = "Zen / Zen 2"
        elif fam == 0x19:
            uarch = "Zen 4" if "avx512f" in fl else "Zen 3"
        elif fam == 0x1A:
            uarch = "Zen 5"
    info["uarch"] = uarch
    isa = [f for f in ("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx2", "fma", "asimd", "sve")
           if f in fl]
    info["isa_flags"] = isa
    return info


def cpu_busy(seconds):
    """Fraction of all CPU time that was not idle over the next `seconds` (from /proc/stat)."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + (v[4] if len(v) > 4 else 0)  # total, idle + iowait
    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
        return 1.0 - (i1 - i0) / max(1, t1 - t0)
    except (OSError, ValueError, IndexError):
        return None


def tool_version(argv):
    try:
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return r.stdout.strip().splitlines()[0] if r.returncode == 0 and r.stdout.strip() else ""
    except OSError:
        return ""


def machine(runner, helpers, env):
    m = {"cpu": cpu_info(), "cores": len(runner.cpus), "host": platform.node(),
         "kernel": platform.release(), "python": platform.python_version()}
    if helpers.get("check_ops"):
        r = run_cmd([helpers["check_ops"], "info"], env=env)
        if r.returncode == 0:
            m["tapegrad"] = json.loads(r.stdout)
        else:
            runner.failures.append(("check_ops info", tail(r.stderr)))
    m["sleef"] = tool_version(["pkg-config", "--modversion", "sleef"])
    m["benchmark"] = tool_version(["pkg-config", "--modversion", "benchmark"]) or \
        tool_version(["dpkg-query", "-W", "-f=${Version}", "libbenchmark-dev"])
    m["cc"] = tool_version([os.environ.get("CC") or "cc", "--version"])
    blas = "/etc/alternatives/libblas.so.3-x86_64-linux-gnu"
    m["libblas"] = os.path.realpath(blas) if os.path.exists(blas) else ""
    try:
        r = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        d = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        m["commit"] = r.stdout.strip() + (" + uncommitted changes" if d.stdout.strip() else "")
    except OSError:
        m["commit"] = ""
    return m


# ---------------------------------------------------------------------------------------------
# Turning measurements into rows
# ---------------------------------------------------------------------------------------------
class Result:
    """One row at one thread count."""

    def __init__(self, row, k):
        self.row, self.k = row, k
        self.kmax = k           # the largest thread count of the run (set by build_results)
        self.run_threads = [k]  # every thread count of the run (set by build_results)
        self.tg = self.peer = self.peer2 = self.limit = self.ref = None
        self.limit_text = ""
        self.memcpy = {}        # memcpy kind -> seconds, for memcpy_frac_min targets
        self.cached_read = None  # (GB/s, seconds for the limit's bytes, MiB read): from cache
        self.tg_note = self.peer_note = self.peer2_note = ""   # missing / error text
        self.tg_state = self.peer_state = "ok"                 # ok | missing | error
        self.checks = []
        self.check_ok = None
        self.targets = []       # (target, measured text, ok or None)
        self.status = ""
        self.reasons = []
        self.notes = []
        self.bytes = None
        self.peer_form = ""

    @property
    def ratio(self):
        return self.peer / self.tg if self.tg and self.peer else None

    @property
    def ratio2(self):
        return self.peer2 / self.tg if self.tg and self.peer2 else None


def _gb_value(data, k, spec, isa):
    _, binary, name = spec
    name = name.format(k=k, isa=isa)
    runs = data["gb"].get(k, {}).get(binary)
    listed = data["lists"].get(binary)
    if listed is None:
        return None, "missing", "%s not built" % os.path.join(data["build"], "bench", binary)
    if name not in listed:
        return None, "missing", "%s has no benchmark %s" % (binary, name)
    rec = (runs or {}).get(name)
    if rec is None:
        return None, "missing", "%s not run" % name
    if "error" in rec:
        return None, "error", "%s: %s" % (name, rec["error"])
    return rec["seconds"], "ok", ""


def memcpy_seconds(data, k, kind):
    """(seconds, source) of one memcpy (or read) for the limit of kind at k threads."""
    if k == 1 and kind in MEMCPY_GB:
        binary, name = MEMCPY_GB[kind]
        rec = data["gb"].get(1, {}).get(binary, {}).get(name)
        if rec and "seconds" in rec:
            return rec["seconds"], "%s %s" % (binary, name)
    p = data["probe"].get(k, {}).get(kind)
    if p:
        return p["median_s"] * (MEMCPY_BYTES[kind] / p["bytes"]), "probe %s, %d thread%s" % (
            "read" if kind.startswith("read") else "memcpy", k, "s" if k > 1 else "")
    return None, ""


def memcpy_share(t, memcpy_s, tg_s):
    """A memcpy_frac_min target's figure: the bytes the workload moves per second against the
    bytes the memcpy moves per second (it reads and writes MEMCPY_BYTES). A workload that moves
    as much as the memcpy (sigmoid: reads x, writes y) compares by time alone; one that only
    reads (the fused pass reads X) moves half the memcpy's bytes."""
    return (t.moved / tg_s) / (2 * MEMCPY_BYTES[t.memcpy] / memcpy_s)


def build_results(rows, data, threads, smoke, reasons):
    isa = (data["machine"].get("tapegrad") or {}).get("isa", "avx2")
    out = []
    for row in rows:
        for k in threads:
            if not row.when(k):
                continue
            r = Result(row, k)
            r.kmax = max(threads)
            r.run_threads = list(threads)
            # tapegrad
            if row.tg[0] == "gb":
                r.tg, r.tg_state, r.tg_note = _gb_value(data, k, row.tg, isa)
            else:
                c = data["cli"].get(k, {})
                if "missing" in c:
                    r.tg_state, r.tg_note = "missing", c["missing"]
                elif "error" in c:
                    r.tg_state, r.tg_note = "error", c["error"]
                else:
                    r.tg = c.get(row.tg[1])
                    if row.id == "train_e2e":
                        r.notes.append("tapegrad: load %s + train %s (medians), process wall "
                                       "time; %s L-BFGS iterations, training log loss %.6f" % (
                                           fmt_time(c.get("seconds_load")),
                                           fmt_time(c.get("seconds_train")),
                                           c.get("iterations", "?"),
                                           c.get("train_log_loss") or float("nan")))
            # peers
            for which, spec in (("peer", row.peer), ("peer2", row.peer2)):
                if not spec:
                    continue
                script, wid = spec
                pd = data["peers"].get(k, {}).get(script)
                state, note, val = "ok", "", None
                if pd is None:
                    state, note = "missing", "peers/%s.py not run" % script
                elif pd.get("setup_error"):
                    state, note = "missing", pd["setup_error"]
                elif "error" in pd and not pd["results"]:
                    state, note = "error", pd["error"]
                else:
                    res = pd["results"].get(wid)
                    if res is None:
                        state, note = "missing", "%s not run" % wid
                    elif "missing" in res:
                        state, note = "missing", res["missing"]
                    elif "error" in res:
                        state, note = "error", res["error"]
                    else:
                        val = res.get("seconds")
                        r.checks += [dict(c, side=which) for c in res.get("checks", [])]
                        if which == "peer":
                            r.peer_form = res.get("form", "")
                            r.bytes = res.get("bytes")
                            if res.get("forms"):
                                r.notes.append("PyTorch forms: " + ", ".join(
                                    "%s %s" % (f, fmt_time(s)) for f, s in res["forms"].items()))
                            if res.get("sklearn_iterations") is not None:
                                r.notes.append("scikit-learn: %d L-BFGS iterations" %
                                               res["sklearn_iterations"])
                if which == "peer":
                    r.peer, r.peer_state, r.peer_note = val, state, note
                else:
                    r.peer2, r.peer2_note = val, note
            if r.checks:
                r.check_ok = all(c["ok"] for c in r.checks)
            # limit
            if row.limit and not smoke:
                kind, amount, text = row.limit
                if kind == "flops":
                    fma = data["probe"].get(k, {}).get("fma")
                    if fma and fma.get("best"):
                        r.limit = amount / (fma["best"] * 1e9)
                        r.limit_text = "%s %.0f GFLOP/s" % (text, fma["best"])
                else:
                    s, src = memcpy_seconds(data, k, kind)
                    if s:
                        r.limit = amount * s
                        r.limit_text = text
                    c = data["probe"].get(k, {}).get("read_cached")
                    if kind.startswith("read") and c and c.get("best_s"):
                        rate = c["bytes"] / c["best_s"]
                        r.cached_read = (rate / 1e9, amount * MEMCPY_BYTES[kind] / rate,
                                         c["bytes"] >> 20)
            for t in row.targets:
                if t.memcpy and not smoke:
                    s_, _ = memcpy_seconds(data, k, t.memcpy)
                    if s_:
                        r.memcpy[t.memcpy] = s_
            # reference benchmark and extra figures
            if row.ref:
                r.ref, _, _ = _gb_value(data, k, row.ref, isa)
                if r.ref and r.tg:
                    if row.ref_label == "raw cblas_sgemm":
                        r.notes.append("raw cblas_sgemm %s: tensor API at %.1f%%" % (
                            fmt_time(r.ref), 100 * r.ref / r.tg))
                    elif row.ref_label == "forward":
                        r.notes.append("%.2f× the forward (%s)" % (r.tg / r.ref, fmt_time(r.ref)))
                    elif row.ref_label == "1 thread":
                        r.notes.append("1 thread %s: %.2f× scaling" % (fmt_time(r.ref),
                                                                       r.ref / r.tg))
            for text, spec in row.notes:
                v, _, _ = _gb_value(data, k, spec, isa)
                if v:
                    r.notes.append("%s %s" % (text, fmt_time(v)))
            if row.id == "sin_threads":
                p1 = data["peers"].get(1, {}).get("torch_kernels", {}).get("results", {})
                p1 = p1.get("sin_fwd")
                if p1 and p1.get("seconds") and r.peer:
                    r.notes.append("PyTorch scales %.2f×" % (p1["seconds"] / r.peer))
                # The memory side of sin's scaling in the same interleaved repetitions: the
                # same loop, chunks and stores with next to no arithmetic.
                n1, _, _ = _gb_value(data, k, neg_threads(1), isa)
                nk, _, _ = _gb_value(data, k, neg_threads("{k}"), isa)
                if n1 and nk and r.tg:
                    r.notes.append("neg on the pool (sin's loop without its arithmetic) scales "
                                   "%.2f× (%s, 1 thread %s), in the same interleaved repetitions; "
                                   "sin on %d threads takes %.2f× its time" % (
                                       n1 / nk, fmt_time(nk), fmt_time(n1), k, r.tg / nk))
                # The memory ceiling on scaling: memcpy at 1 and k threads, side by side.
                sc = data["probe"].get(k, {}).get("memcpy64_scaling")
                if sc:
                    r.notes.append("memcpy 64 MiB scales %.2f× (1 and %d threads run back to "
                                   "back)" % (sc, k))
            if row.id == "csv_parse" and r.bytes and r.tg:
                r.notes.append("%.0f MB file: tapegrad %.2f GB/s, pandas %s" % (
                    r.bytes / 1e6, r.bytes / r.tg / 1e9,
                    "%.2f GB/s" % (r.bytes / r.peer / 1e9) if r.peer else "—"))
            evaluate(r, smoke)
            add_reasons(r, reasons)
            out.append(r)
    return out


def evaluate(r, smoke):
    """Fills r.targets and r.status."""
    if r.tg_state != "ok" or (r.peer_state != "ok"):
        bits = []
        if r.tg_state != "ok":
            bits.append("tapegrad %s: %s" % (r.tg_state, r.tg_note))
        if r.peer_state != "ok":
            bits.append("peer %s: %s" % (r.peer_state, r.peer_note))
        r.status = ("error" if "error" in (r.tg_state, r.peer_state) else "missing")
        r.reasons += bits
    if r.check_ok is False:
        r.status = "check failed"
        r.reasons += ["%s: %s" % (c["what"], c.get("detail", "disagrees")) for c in r.checks
                      if not c["ok"]]
    if smoke:
        if not r.status:
            r.status = "ok"
        return
    for t in r.row.targets:
        if t.threads != "all" and t.threads not in r.run_threads and r.k == r.kmax:
            # e.g. a 2-thread goal on a machine with more CPUs, run at 1 and all of them: say
            # so in the table rather than leave the goal out.
            r.targets.append((t, "not measured: no %d-thread pass in this run (--threads)" %
                              t.threads, None))
            continue
        if (r.kmax if t.threads == "all" else t.threads) != r.k:
            continue
        measured, ok = "—", None
        tg = r.tg
        if t.kind == "time_max" and tg:
            measured, ok = fmt_time(tg), tg <= t.value
        elif t.kind == "speedup_min" and r.ratio:
            measured, ok = fmt_ratio(r.ratio), r.ratio >= t.value
        elif t.kind == "speedup2_min" and r.ratio2:
            measured, ok = fmt_ratio(r.ratio2), r.ratio2 >= t.value
        elif t.kind == "memcpy_frac_min" and tg and r.memcpy.get(t.memcpy):
            share = memcpy_share(t, r.memcpy[t.memcpy], tg)
            measured, ok = "%.0f%%" % (100 * share), share >= t.value
        elif t.kind == "ref_frac_min" and tg and r.ref:
            measured, ok = "%.1f%%" % (100 * r.ref / tg), r.ref / tg >= t.value
        elif t.kind == "ref_ratio_max" and tg and r.ref:
            measured, ok = fmt_ratio(tg / r.ref), tg / r.ref <= t.value
        elif t.kind == "scaling_min" and tg and r.ref:
            measured, ok = fmt_ratio(r.ref / tg), r.ref / tg >= t.value
        elif t.kind == "throughput_min" and tg and r.bytes:
            measured, ok = "%.2f GB/s" % (r.bytes / tg / 1e9), r.bytes / tg >= t.value
        r.targets.append((t, measured, ok))
    if not r.status:
        if not r.targets:
            r.status = "—"
        elif all(ok for _, _, ok in r.targets):
            r.status = "met"
        elif any(ok is False for _, _, ok in r.targets):
            r.status = "short"
        else:
            r.status = "?"


SLOWER = 0.9  # speed-up below which a row without a target must say why (noise stays above)


def add_reasons(r, manual):
    """Why a row falls short: what the measurements themselves say, then any reason written
    down in bench/compare/reasons.json (keys "ROW" or "ROW@THREADS")."""
    if r.status == "short":
        for t, _, ok in r.targets:
            if ok is not False:
                continue
            if t.kind == "speedup_min" and r.peer and r.limit:
                need = r.peer / t.value
                if need < r.limit:
                    r.reasons.append(
                        "%s is out of reach on this machine: it needs ≤ %s, below the %s floor "
                        "of %s (PyTorch already runs at %.0f%% of it)" % (
                            t.text, fmt_time(need), r.limit_text, fmt_time(r.limit),
                            100 * r.limit / r.peer))
                else:
                    r.reasons.append("%s needs ≤ %s; tapegrad is at %.0f%% of the %s floor" % (
                        t.text, fmt_time(need), 100 * r.limit / r.tg, r.limit_text))
            elif t.kind == "time_max" and r.limit and r.limit > t.value:
                r.reasons.append("%s is below the floor: %s takes %s on this machine" % (
                    t.text, r.limit_text, fmt_time(r.limit)))
            elif t.kind == "scaling_min" and r.notes:
                r.reasons.append("%s: %s" % (t.text, "; ".join(
                    n for n in r.notes if "scal" in n)))
            elif t.kind == "memcpy_frac_min" and r.memcpy.get(t.memcpy):
                m_ = r.memcpy[t.memcpy]
                r.reasons.append("%s: at %.0f%% (%.1f GB/s: %.0f MB in %s, against %.1f GB/s "
                                 "for %s: %.0f MB read + written in %s)" % (
                                     t.text, 100 * memcpy_share(t, m_, r.tg),
                                     t.moved / r.tg / 1e9, t.moved / 1e6, fmt_time(r.tg),
                                     2 * MEMCPY_BYTES[t.memcpy] / m_ / 1e9,
                                     MEMCPY_TEXT[t.memcpy], 2 * MEMCPY_BYTES[t.memcpy] / 1e6,
                                     fmt_time(m_)))
            if t.kind == "time_max" and r.cached_read and r.cached_read[1] > t.value:
                # The memory floor moves with the machine's load; this one does not need it.
                r.reasons.append(
                    "%s is out of reach at %d thread%s even without memory: the fastest read in "
                    "this run, %d MiB read again and again from cache, went at %.1f GB/s, at "
                    "which the same bytes take %s" % (
                        t.text, r.k, "s" if r.k > 1 else "", r.cached_read[2],
                        r.cached_read[0], fmt_time(r.cached_read[1])))
    for key in ("%s@%d" % (r.row.id, r.k), r.row.id):
        if key in manual and r.status in ("short", "missing", "error", "?"):
            r.reasons.append(manual[key])
            break
    # A row without a target where tapegrad is clearly slower than its peer gets its written
    # reason as a note, so the table never shows a loss without saying why.
    if r.status == "—" and r.ratio is not None and r.ratio < SLOWER:
        key = "%s@%d" % (r.row.id, r.k)
        r.notes.append("slower than the peer (%s): %s" % (
            fmt_ratio(r.ratio), manual.get(key, manual.get(
                r.row.id, "no reason recorded yet (add one to bench/compare/reasons.json)"))))
    if r.status == "short" and not r.reasons:
        r.reasons.append("no reason recorded yet (add one to bench/compare/reasons.json)")


# ---------------------------------------------------------------------------------------------
# Output: BENCHMARKS.md and the SVG charts
# ---------------------------------------------------------------------------------------------
STATUS_MARK = {"met": "✅ met", "short": "❌ short", "—": "—", "?": "? (no figure)",
               "missing": "⚠️ missing", "error": "❌ error", "check failed": "❌ check failed",
               "ok": "ok"}
COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]


def svg_chart(title, results, threads):
    """Horizontal bars of peer time / tapegrad time on a log axis, one bar per thread count."""
    entries = list(results)
    labels = []
    for r in entries:
        if r.row.label not in labels:
            labels.append(r.row.label)
    vals = [r.ratio for r in entries if r.ratio]
    targets = [t.value for r in entries for t, _, _ in r.targets if t.kind == "speedup_min"]
    lo = min([0.5] + [v / 1.5 for v in vals])
    hi = max([4.0] + [v * 1.6 for v in vals] + [t * 1.3 for t in targets])
    llo, lhi = math.log10(lo), math.log10(hi)
    left, right, top, bar, gap = 330, 150, 58, 16, 10
    width = 1000
    plot_w = width - left - right
    per = bar * len(threads) + gap
    height = top + per * len(labels) + 46

    def x(v):
        return left + (math.log10(v) - llo) / (lhi - llo) * plot_w

    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
         'font-family="Helvetica, Arial, sans-serif" font-size="12">' % (width, height, width,
                                                                        height),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>' % (
             10, html.escape(title)),
         '<text x="%d" y="40" fill="#555">speed-up = peer time / tapegrad time (log scale; '
         '&gt; 1: tapegrad faster); dashed line: target at 1 thread</text>' % 10]
    # grid
    ticks = []
    for e in range(math.floor(llo) - 1, math.ceil(lhi) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo <= v <= hi:
                ticks.append(v)
    for v in ticks:
        xv = x(v)
        o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="%s"/>' % (
            xv, top - 6, xv, height - 40, "#333" if v == 1 else "#ddd",
            "1.5" if v == 1 else "1"))
        o.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s×</text>' % (
            xv, height - 26, ("%g" % v)))
    for i, label in enumerate(labels):
        y0 = top + i * per
        o.append('<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>' % (
            left - 8, y0 + bar * len(threads) / 2, html.escape(label)))
        for j, k in enumerate(threads):
            yy = y0 + j * bar
            match = [r for r in entries if r.row.label == label and r.k == k]
            if not match:
                continue
            r = match[0]
            color = COLORS[j % len(COLORS)]
            if r.ratio:
                xe = x(max(min(r.ratio, hi), lo))
                x1 = x(1.0) if lo < 1.0 else left
                xa, xb = min(x1, xe), max(x1, xe)
                o.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%d" fill="%s"/>' % (
                    xa, yy + 1, max(xb - xa, 1), bar - 2, color))
                mark = {"met": " ✓", "short": " ✗ short", "check failed": " ✗ check"}.get(
                    r.status, "")
                xl = xb
                for t, _, _ in r.targets:
                    if t.kind == "speedup_min":
                        xt = x(t.value)
                        xl = max(xl, xt)
                        o.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#000" '
                                 'stroke-width="2" stroke-dasharray="3,2"/>' % (
                                     xt, yy - 2, xt, yy + bar + 2))
                o.append('<text x="%.1f" y="%.1f" dominant-baseline="middle" fill="%s">'
                         '%s, %d thr%s</text>' % (xl + 4, yy + bar / 2, "#b00" if "✗" in mark
                                                  else "#222", fmt_ratio(r.ratio), k, mark))
            else:
                o.append('<text x="%d" y="%.1f" dominant-baseline="middle" fill="#b00">'
                         '%d thr: %s</text>' % (left + 4, yy + bar / 2, k,
                                                html.escape(r.status or "no figure")))
    # legend
    lx = left
    for j, k in enumerate(threads):
        o.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>' % (
            lx, height - 16, COLORS[j % len(COLORS)]))
        o.append('<text x="%d" y="%d">%d thread%s</text>' % (lx + 16, height - 6, k,
                                                            "s" if k > 1 else ""))
        lx += 100
    o.append("</svg>")
    return "\n".join(o) + "\n"


def cell(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


def write_report(out_dir, results, data, threads, args, elapsed):
    m = data["machine"]
    cpu = m["cpu"]
    tgi = m.get("tapegrad", {})
    charts_dir = os.path.join(out_dir, "bench", "compare", "charts")
    os.makedirs(charts_dir, exist_ok=True)
    L = []
    L.append("# Benchmarks: tapegrad vs PyTorch, pandas and scikit-learn")
    L.append("")
    argv = []
    skip = False
    for a in sys.argv[1:]:  # the command as run, without where it wrote
        if skip or a == "--out" or a.startswith("--out="):
            skip = a == "--out"
            continue
        argv.append(a)
    L.append("Generated by `/usr/bin/python3 bench/compare/run.py%s` on %s in %.0f s "
             "(commit %s). Do not edit by hand: rerun the command. How each row is measured: "
             "[bench/compare/README.md](bench/compare/README.md)." % (
                 "".join(" " + a for a in argv),
                 datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), elapsed,
                 m.get("commit") or "unknown"))
    busy = data.get("busy_before")
    if busy is not None:
        L.append("")
        L.append("%sCPU time used by other work in the 2 s before the run: %.0f%% of the "
                 "machine%s" % ("**Warning: the machine was busy.** " if busy > 0.1 else "",
                                100 * busy, ": other work competed for the CPUs and the "
                                "memory bus, so these figures are not trustworthy." if busy > 0.1
                                else "."))
    L.append("")
    L.append("## Machine")
    L.append("")
    L.append("| | |")
    L.append("|---|---|")
    L.append("| CPU | %s%s, %d cores available; %s |" % (
        cpu.get("model"), " (%s)" % ", ".join(x for x in (cpu.get("uarch"),
                                                          cpu.get("family_model")) if x)
        if cpu.get("uarch") or cpu.get("family_model") else "", m["cores"],
        ", ".join(cpu.get("isa_flags", []))))
    L.append("| tapegrad ISA family | `%s` (run-time dispatch; `TAPEGRAD_ISA` %s) |" % (
        tgi.get("isa", "?"), "= " + os.environ["TAPEGRAD_ISA"] if os.environ.get("TAPEGRAD_ISA")
        else "unset"))
    for k in threads:
        fma = data["probe"].get(k, {}).get("fma") or {}
        mc, src = memcpy_seconds(data, k, "memcpy64")
        rc = data["probe"].get(k, {}).get("read_cached") or {}
        L.append("| %d thread%s | peak FMA %s GFLOP/s (%s, probe); memcpy 64 MiB %s = %s GB/s "
                 "read + write (%s); read from cache %s GB/s (%s MiB, best, probe) |" % (
                     k, "s" if k > 1 else "", "%.0f" % fma["best"] if fma.get("best") else "?",
                     fma.get("best_isa", "?"), fmt_time(mc),
                     "%.1f" % (2 * MIB64 / mc / 1e9) if mc else "?", src or "not measured",
                     "%.1f" % (rc["bytes"] / rc["best_s"] / 1e9) if rc.get("best_s") else "?",
                     rc.get("bytes", CACHED_READ_BYTES) >> 20))
    versions = {}
    for k in threads:
        for pd in data["peers"].get(k, {}).values():
            versions.update(pd.get("versions") or {})
    L.append("| tapegrad | %s, %s |" % (tgi.get("tapegrad", "?"), m.get("cc", "")))
    L.append("| OpenBLAS | %s; kernels picked at load: %s; PyTorch's BLAS: %s |" % (
        tgi.get("openblas", "?"), tgi.get("openblas_core", "?"), m.get("libblas") or "?"))
    backend = tgi.get("matmul_backend", "?")
    L.append("| tapegrad's large matrix products | %s (`tg_matmul_backend()`; `TAPEGRAD_GEMM` %s) |"
             % ("tapegrad's own `%s` tiles, as OpenBLAS's %s kernels are below that family" % (
                 tgi.get("isa", "?"), tgi.get("openblas_core", "?")) if backend == "tiles"
                else "OpenBLAS's sgemm" if backend == "openblas" else "?",
                "= " + os.environ["TAPEGRAD_GEMM"] if os.environ.get("TAPEGRAD_GEMM")
                else "unset"))
    L.append("| SLEEF, Google Benchmark | %s, %s |" % (m.get("sleef") or "?",
                                                      m.get("benchmark") or "?"))
    L.append("| Python side | Python %s, PyTorch %s, NumPy %s, pandas %s, scikit-learn %s |" % (
        m["python"], versions.get("torch", "?"), versions.get("numpy", "?"),
        versions.get("pandas", "?"), versions.get("sklearn", "?")))
    L.append("| OpenBLAS environment | %s |" % data["openblas_env_text"])
    L.append("")
    L.append("Method: tapegrad figures are medians of %d Google Benchmark repetitions "
             "(`--benchmark_repetitions=%d --benchmark_report_aggregates_only=true`), real time, "
             "with the repetitions of one binary's benchmarks randomly interleaved "
             "(`--benchmark_enable_random_interleaving=true`) so that two sides of a ratio "
             "see the same machine; "
             "peers are `timeit` medians of %d repeats of a loop of at least 0.2 s (single calls "
             "for the multi-second pandas/scikit-learn rows); the `tapegrad train` rows are "
             "medians of %d runs of the command (after one warm-up). At *k* threads every "
             "process is pinned to *k* CPUs and `OPENBLAS_NUM_THREADS`, `OMP_NUM_THREADS`, "
             "`TAPEGRAD_NUM_THREADS` and `torch.set_num_threads` are *k*. **Speed-up** = peer "
             "time / tapegrad time (above 1: tapegrad is faster). **Limit**: the physical "
             "floor measured in this run (memcpy of the bytes the workload must move, or its "
             "FLOPs at the measured peak FMA rate) and tapegrad's share of it. Before timing, "
             "each peer script checks that it computes the same numbers as tapegrad on the "
             "same inputs." % (args.reps, args.reps, args.reps, max(3, args.reps)))
    L.append("")
    # summary of targets
    L.append("## Targets")
    L.append("")
    L.append("| workload | threads | target | measured | status |")
    L.append("|---|---|---|---|---|")
    for r in results:
        for t, measured, ok in r.targets:
            L.append("| %s | %d | %s | %s | %s |" % (
                cell(r.row.label), r.k, cell(t.text), cell(measured),
                "✅" if ok else ("❌" if ok is False else "?")))
    L.append("")
    for gid, gtitle in GROUPS:
        rs = [r for r in results if r.row.group == gid]
        if not rs:
            continue
        L.append("## %s" % gtitle)
        L.append("")
        L.append("![%s](bench/compare/charts/%s.svg)" % (gtitle, gid))
        L.append("")
        L.append("| workload | threads | tapegrad | peer | speed-up | limit (share) | target | "
                 "status |")
        L.append("|---|---|---|---|---|---|---|---|")
        for r in rs:
            peer = "%s: %s" % (r.row.peer_label, fmt_time(r.peer) if r.peer else
                               (r.peer_state if r.peer_state != "ok" else "—"))
            if r.row.peer2:
                peer += "<br>%s: %s" % (r.row.peer2_label, fmt_time(r.peer2) if r.peer2 else
                                        "missing")
            ratio = fmt_ratio(r.ratio)
            if r.row.peer2 and r.ratio2:
                ratio += "<br>%s" % fmt_ratio(r.ratio2)
            limit = "—"
            if r.limit:
                limit = "%s: %s (%.0f%%)" % (r.limit_text, fmt_time(r.limit),
                                             100 * r.limit / r.tg) if r.tg else fmt_time(r.limit)
            tgt = "<br>".join("%s: %s %s" % (t.text, meas, "✅" if ok else
                                              ("❌" if ok is False else "?"))
                              for t, meas, ok in r.targets) or "—"
            tg = fmt_time(r.tg) if r.tg else r.tg_state
            L.append("| %s | %d | %s | %s | %s | %s | %s | %s |" % (
                cell(r.row.label), r.k, cell(tg), cell(peer), ratio, cell(limit), cell(tgt),
                STATUS_MARK.get(r.status, r.status)))
        notes = [(r, n) for r in rs for n in r.notes]
        why = [(r, n) for r in rs for n in r.reasons]
        if why:
            L.append("")
            L.append("Short, missing or failed rows:")
            L.append("")
            for r, n in why:
                L.append("- **%s, %d thread%s**: %s" % (r.row.label, r.k, "s" if r.k > 1 else "",
                                                         n))
        if notes:
            L.append("")
            L.append("Details:")
            L.append("")
            for r, n in notes:
                L.append("- %s, %d thread%s: %s" % (r.row.label, r.k, "s" if r.k > 1 else "", n))
        forms = []
        for r in rs:
            if r.peer_form and r.peer_form not in forms:
                forms.append(r.peer_form)
        if forms:
            L.append("")
            L.append("Peer code timed: " + "; ".join("`%s`" % f for f in forms) + ".")
        L.append("")
        with open(os.path.join(charts_dir, "%s.svg" % gid), "w") as f:
            f.write(svg_chart("tapegrad vs peers: %s" % gtitle, rs, threads))
    # checks
    L.append("## Correctness checks")
    L.append("")
    L.append("| workload | threads | check | largest abs. error | result |")
    L.append("|---|---|---|---|---|")
    for r in results:
        for c in r.checks:
            L.append("| %s | %d | %s | %s | %s |" % (
                cell(r.row.label), r.k, cell(c["what"]),
                "%.3g" % c["max_abs_err"] if c.get("max_abs_err") is not None else "—",
                "✅" if c["ok"] else "❌ " + cell(c.get("detail", ""))))
    L.append("")
    path = os.path.join(out_dir, "BENCHMARKS.md")
    with open(path, "w") as f:
        f.write("\n".join(L))
    with open(os.path.join(out_dir, "bench", "compare", "results.json"), "w") as f:
        json.dump({"machine": _jsonable(data["machine"]), "threads": threads,
                   "rows": [{"id": r.row.id, "group": r.row.group, "threads": r.k,
                             "tapegrad_s": r.tg, "peer_s": r.peer, "peer2_s": r.peer2,
                             "speedup": r.ratio, "limit_s": r.limit, "status": r.status,
                             "targets": [{"target": t.text, "measured": m_, "ok": ok}
                                         for t, m_, ok in r.targets],
                             "reasons": r.reasons, "notes": r.notes} for r in results]},
                  f, indent=1)
    return path


def _jsonable(o):
    if isinstance(o, dict):
        return {k: _jsonable(v) for k, v in o.items()}
    if isinstance(o, (set, list, tuple)):
        return [_jsonable(v) for v in sorted(o)] if isinstance(o, set) else [_jsonable(v)
                                                                             for v in o]
    return o


def print_summary(results, smoke):
    w = max(len(r.row.label) for r in results) if results else 10
    print("%-*s  thr  %-11s %-11s %-9s %-13s %s" % (w, "workload", "tapegrad", "peer",
                                                   "speed-up", "check", "status"))
    for r in results:
        check = {True: "agree", False: "DISAGREE", None: "—"}[r.check_ok]
        print("%-*s  %3d  %-11s %-11s %-9s %-13s %s" % (
            w, r.row.label, r.k, fmt_time(r.tg) if r.tg else r.tg_state,
            fmt_time(r.peer) if r.peer else r.peer_state,
            "" if smoke else fmt_ratio(r.ratio), check, r.status))
        for n in r.reasons:
            print("%-*s       - %s" % (w, "", n))


# ---------------------------------------------------------------------------------------------
def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true",
                   help="every workload once at tiny sizes; checks only (CI)")
    p.add_argument("--threads", dest="threads_arg", default=None,
                   help="comma-separated thread counts, e.g. 1,2 (default: 1 and all cores)")
    p.add_argument("--build", default=os.path.join(REPO, "build"), help="CMake build directory")
    p.add_argument("--out", default=None,
                   help="where BENCHMARKS.md and bench/compare/charts/ go (default: the "
                        "repository root; --smoke writes nothing unless --out is given)")
    p.add_argument("--reps", type=int, default=5, help="repetitions per figure (median)")
    p.add_argument("--groups", default="", help="only these groups: autograd,kernels,matmul,"
                                                "training")
    p.add_argument("--data", default=None,
                   help="directory for the generated 1M x 32 CSV "
                        "(default BUILD/bench-compare-data)")
    p.add_argument("--python", default=sys.executable, help="interpreter for the peer scripts")
    p.add_argument("--keep-openblas-env", action="store_true",
                   help="full run: keep OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (default: unset "
                        "them for the run; --smoke always keeps them)")
    p.add_argument("--no-libtorch", action="store_true", help="skip the libtorch C++ peer")
    p.add_argument("--strict", action="store_true",
                   help="also fail when a binary, benchmark or peer is missing")
    args = p.parse_args()
    if args.reps < 1:
        p.error("--reps must be >= 1")
    return args


def main():
    t_start = time.perf_counter()
    args = parse_args()
    runner = Runner(args)
    ncpu = len(runner.cpus)
    if args.threads_arg:
        try:
            threads = sorted({int(t) for t in args.threads_arg.split(",") if t.strip()})
        except ValueError:
            sys.stderr.write("run.py: --threads wants numbers like 1,2\n")
            return 2
    else:
        threads = sorted({1, ncpu})
    if not threads or threads[0] < 1 or threads[-1] > ncpu:
        sys.stderr.write("run.py: thread counts must be between 1 and %d (the CPUs this process "
                         "may use)\n" % ncpu)
        return 2
    args.openblas_env_unset = not args.smoke and not args.keep_openblas_env
    ob = {v: os.environ.get(v) for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    ob_text = ", ".join("%s=%s" % (k, v if v is not None else "(unset)") for k, v in ob.items())
    if args.openblas_env_unset and any(v is not None for v in ob.values()):
        ob_text = "**unset for this run** (the machine sets %s)" % ob_text
    elif args.openblas_env_unset:
        ob_text += " (neither is set on this machine)"
    else:
        ob_text += " (kept as the machine sets them)"
    groups = [g for g in args.groups.split(",") if g]
    rows = [r for r in ROWS if not groups or r.group in groups]

    helpers, helper_errors = find_helpers(runner.build, want_libtorch=not args.smoke and
                                          not args.no_libtorch and
                                          any(r.peer2 for r in rows))
    for name in ("check_ops", "probe"):
        if not helpers.get(name):
            runner.failures.append((name, helper_errors.get(name, "not found")))
    if args.no_libtorch:
        helper_errors["seed_libtorch"] = "skipped (--no-libtorch)"

    # data
    csv = None
    need_csv = any(r.peer[0] == "pandas_sklearn" for r in rows)
    tmp = tempfile.TemporaryDirectory(prefix="tg-compare-")
    gen = os.path.join(REPO, "tools", "gen_big_csv.py")
    if need_csv and os.path.exists(gen):
        rows_n, cols_n = SMOKE_CSV if args.smoke else FULL_CSV
        ddir = tmp.name if args.smoke else (args.data or os.path.join(runner.build,
                                                                      "bench-compare-data"))
        os.makedirs(ddir, exist_ok=True)
        csv = os.path.join(ddir, "big_%dx%d.csv" % (rows_n, cols_n))
        if not os.path.exists(csv):
            log("writing %s with tools/gen_big_csv.py" % csv)
            r = subprocess.run([args.python, gen, csv + ".part", str(rows_n), str(cols_n), "1"],
                               stderr=subprocess.PIPE, text=True)
            if r.returncode != 0:
                runner.failures.append(("gen_big_csv.py", tail(r.stderr)))
                csv = None
            else:
                os.replace(csv + ".part", csv)

    data = {"gb": {}, "lists": {}, "probe": {}, "cli": {}, "peers": {},
            "openblas_env_text": ob_text, "build": runner.build}
    data["machine"] = machine(runner, helpers, runner.env(ncpu))
    data["busy_before"] = None if args.smoke else cpu_busy(2.0)
    isa = (data["machine"].get("tapegrad") or {}).get("isa", "avx2")

    for k in threads:
        # tapegrad: benchmark binaries
        wanted = {}
        for r in rows:
            if not r.when(k):
                continue
            specs = [r.tg] + ([r.ref] if r.ref else []) + [s for _, s in r.notes] + r.also
            for s in specs:
                if s[0] == "gb":
                    wanted.setdefault(s[1], []).append(s[2].format(k=k, isa=isa))
        for kind, (binary, name) in MEMCPY_GB.items():
            if any((r.limit and r.limit[0] == kind) or any(t.memcpy == kind for t in r.targets)
                   for r in rows):
                wanted.setdefault(binary, []).append(name)
        data["gb"][k] = {}
        for binary, names in wanted.items():
            listed = runner.gb_list(binary)
            data["lists"][binary] = listed
            if listed is None:
                runner.missing.append((binary, "%s not built" % runner.gb_path(binary)))
                continue
            for n in names:
                if n not in listed:
                    runner.missing.append((binary, "no benchmark %s" % n))
            res = runner.gb_run(binary, list(dict.fromkeys(names)), k)
            for n, rec in res.items():
                if "error" in rec:
                    runner.failures.append(("%s %s" % (binary, n), rec["error"]))
            data["gb"][k][binary] = res
        # physical limits
        if any(r.limit or any(t.memcpy for t in r.targets) for r in rows):
            log("k=%d probe: peak FMA and memcpy" % k)
            data["probe"][k] = runner.probe(helpers.get("probe"), k)
        # tapegrad: the command
        if any(r.tg[0] == "cli" for r in rows):
            data["cli"][k] = runner.cli(k, csv)
        # peers
        data["peers"][k] = {}
        by_script = {}
        for r in rows:
            if r.when(k):
                for spec in (r.peer, r.peer2):
                    if spec:
                        by_script.setdefault(spec[0], []).append(spec[1])
        if not helpers.get("check_ops"):
            continue
        for script, ids in by_script.items():
            wd = os.path.join(tmp.name, "%s-%d" % (script, k))
            pd = runner.peer(script, list(dict.fromkeys(ids)), k, helpers, csv, wd)
            data["peers"][k][script] = pd
            for wid, res in pd["results"].items():
                if "error" in res:
                    runner.failures.append(("%s %s" % (script, wid), res["error"]))
                elif "missing" in res:
                    if not wid.endswith("_libtorch"):
                        runner.missing.append(("%s %s" % (script, wid), res["missing"]))
                elif not res.get("check_ok"):
                    bad = [c for c in res.get("checks", []) if not c["ok"]]
                    runner.failures.append(("%s %s check" % (script, wid), "; ".join(
                        "%s: %s" % (c["what"], c.get("detail", "")) for c in bad) or "no checks"))
            if pd.get("setup_error"):
                runner.missing.append((script, pd["setup_error"]))

    reasons = {}
    rpath = os.path.join(HERE, "reasons.json")
    if os.path.exists(rpath):
        with open(rpath) as f:
            reasons = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    results = build_results(rows, data, threads, args.smoke, reasons)
    for r in results:
        if r.row.peer2 and r.peer2 is None and helper_errors.get("seed_libtorch"):
            r.notes.append("libtorch peer: %s" % helper_errors["seed_libtorch"])
    tmp.cleanup()

    print_summary(results, args.smoke)
    elapsed = time.perf_counter() - t_start
    out_dir = args.out or (None if args.smoke else REPO)
    if out_dir:
        path = write_report(os.path.abspath(out_dir), results, data, threads, args, elapsed)
        print("wrote %s and %s" % (path, os.path.join(out_dir, "bench", "compare", "charts")))
    for what, msg in runner.missing:
        print("missing: %s: %s" % (what, msg))
    for what, msg in runner.failures:
        print("FAILED: %s: %s" % (what, msg))
    print("%s in %.0f s: %d rows, %d failures, %d missing" % (
        "smoke" if args.smoke else "full run", elapsed, len(results), len(runner.failures),
        len(runner.missing)))
    if runner.failures or (args.strict and runner.missing):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
