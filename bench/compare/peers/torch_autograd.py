#!/usr/bin/python3
"""PyTorch mirrors of bench/bench_core.cc's autograd-overhead benchmarks (scalar graphs, where
the per-op bookkeeping is the whole cost).

    seed_graph          BM_seed_graph          x = tensor(3., requires_grad=True); y = x ** 2;
                                               z = sin(y); z.backward(); x.grad.item()
    seed_logistic_step  BM_seed_logistic_step  w, b leaves; p = sigmoid(w * x + b);
                                               binary_cross_entropy(p, y).backward(); w.grad.item()

Each iteration builds the leaves, the graph and the backward pass from scratch, as the
benchmarks do. The check runs the same graph in check_ops and compares the outputs and
gradients (to float32 rounding).

With --libtorch BIN (peers/seed_libtorch.cc, built by run.py) the same two graphs are also
timed in C++ against libtorch, without the interpreter: seed_graph_libtorch and
seed_logistic_step_libtorch, checked against tapegrad the same way."""
import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

X0 = 3.0                                  # the seed graph's leaf
LX, LY, LW, LB = 6.7, 0.0, 1.0, 0.0       # the seed logistic step: input, label, w, b


def seed_graph(ctx):
    torch = ctx.torch

    def step():
        x = torch.tensor(X0, requires_grad=True)
        y = x ** 2
        z = torch.sin(y)
        z.backward()
        return z, x.grad.item()

    z, g = step()
    ctx.tapegrad("seed", X0, ctx.path("seed.bin"))
    got = ctx.load("seed.bin", 2)
    checks = [common.compare("z = sin(x^2)", got[:1], [float(z)], rtol=1e-6),
              common.compare("dz/dx", got[1:], [g], rtol=1e-6)]
    res = ctx.time(step)
    res.update(checks=checks, form="tensor(3., requires_grad=True) -> **2 -> sin -> backward")
    return res


def seed_logistic_step(ctx):
    torch = ctx.torch
    F = torch.nn.functional
    x, y = torch.tensor(LX), torch.tensor(LY)

    def step():
        w = torch.tensor(LW, requires_grad=True)
        b = torch.tensor(LB, requires_grad=True)
        p = torch.sigmoid(w * x + b)
        loss = F.binary_cross_entropy(p, y)
        loss.backward()
        # BM_seed_logistic_step reads one gradient as a float (w's); b's stays a tensor here
        # and is read after the timing, so both sides do the same work per step.
        return loss, w.grad.item(), b.grad

    loss, gw, gb = step()
    gb = gb.item()
    ctx.tapegrad("logstep", LX, LY, LW, LB, ctx.path("logstep.bin"))
    got = ctx.load("logstep.bin", 3)
    checks = [common.compare("BCE loss", got[:1], [float(loss)], rtol=1e-6),
              common.compare("dL/dw, dL/db", got[1:], [gw, gb], rtol=1e-6, atol=1e-7)]
    res = ctx.time(step)
    res.update(checks=checks, form="sigmoid(w * x + b) -> binary_cross_entropy -> backward")
    return res


_libtorch = {}


def libtorch(wid):
    def run(ctx):
        if not ctx.args.libtorch:
            raise common.Missing("libtorch peer not built (run.py builds it in the full run)")
        if not _libtorch:
            cmd = [ctx.args.libtorch, "--reps", str(ctx.reps)] + (["--smoke"] if ctx.smoke else [])
            out = subprocess.run(cmd, stdout=subprocess.PIPE, check=True, text=True).stdout
            _libtorch.update({r["id"]: r for r in json.loads(out)["results"]})
        r = dict(_libtorch[wid])
        values = r.pop("values")
        if wid == "seed_graph":
            ctx.tapegrad("seed", X0, ctx.path("seed.bin"))
            got = ctx.load("seed.bin", 2)
            r["checks"] = [common.compare("libtorch z, dz/dx", got, values, rtol=1e-6)]
        else:
            ctx.tapegrad("logstep", LX, LY, LW, LB, ctx.path("logstep.bin"))
            got = ctx.load("logstep.bin", 3)
            r["checks"] = [common.compare("libtorch loss, dL/dw, dL/db", got, values, rtol=1e-6,
                                          atol=1e-7)]
        r["form"] = "libtorch C++ (peers/seed_libtorch.cc)"
        return r
    return run


WORKLOADS = [("seed_graph", seed_graph), ("seed_logistic_step", seed_logistic_step),
             ("seed_graph_libtorch", libtorch("seed_graph")),
             ("seed_logistic_step_libtorch", libtorch("seed_logistic_step"))]

if __name__ == "__main__":
    common.main(__doc__, WORKLOADS, setup=common.use_torch)
