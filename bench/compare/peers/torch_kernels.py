#!/usr/bin/python3
"""PyTorch mirrors of bench/bench_core.cc's elementwise and reduction benchmarks.

    sigmoid_fwd, sin_fwd, exp_fwd   BM_unary<tg_OP>/16777216        torch.OP(x, out=y)
    sigmoid_fwd_bwd, sin_fwd_bwd,   BM_unary_fwd_bwd<tg_OP>/16777216 OP(x).sum().backward()
    exp_fwd_bwd
    mean                            BM_mean/16777216                 torch.mean(x)

x is 16M float32 values uniform in [-8, 8) (as the benchmarks' make_input). The check runs
check_ops on the same x: forward values and the gradient of sum(OP(x)) must agree to a few
float32 ulps (both sides use SLEEF-class vector math, not the same code)."""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

FULL_N = 1 << 24
SMOKE_N = 4099  # not a multiple of any vector width: exercises the tails

# (forward rtol, atol), (gradient rtol, atol) per op, for inputs in [-8, 8)
TOL = {"sigmoid": ((1e-5, 1e-7), (1e-5, 2.5e-7)),  # grad: y(1-y) loses ~1 ulp of 1 to cancellation
       "sin": ((1e-5, 2e-6), (1e-5, 2e-6)),
       "exp": ((1e-5, 0.0), (1e-5, 0.0))}

_inputs = {}
_checks = {}


def inputs(ctx):
    if "x" not in _inputs:
        torch = ctx.torch
        n = SMOKE_N if ctx.smoke else FULL_N
        g = torch.Generator().manual_seed(42)
        _inputs["x"] = (torch.rand(n, generator=g) - 0.5) * 16.0
    return _inputs["x"]


def check_unary(ctx, op):
    """Forward and gradient of one op against tapegrad; computed once per op."""
    if op in _checks:
        return _checks[op]
    torch = ctx.torch
    x = inputs(ctx)
    n = x.numel()
    ctx.save("x.bin", x)
    ctx.tapegrad("unary", op, n, ctx.path("x.bin"), ctx.path("out.bin"))
    out = ctx.load("out.bin", 2 * n)
    f = getattr(torch, op)
    y = torch.empty_like(x)
    f(x, out=y)  # the timed forward form
    xg = x.clone().requires_grad_(True)
    f(xg).sum().backward()  # the timed forward+backward form
    (fr, fa), (gr, ga) = TOL[op]
    _checks[op] = [common.compare("%s forward" % op, out[:n], y, rtol=fr, atol=fa),
                   common.compare("%s gradient" % op, out[n:], xg.grad, rtol=gr, atol=ga)]
    return _checks[op]


def unary_fwd(op):
    def run(ctx):
        checks = check_unary(ctx, op)
        x = inputs(ctx)
        f = getattr(ctx.torch, op)
        y = ctx.torch.empty_like(x)
        res = ctx.time(lambda: f(x, out=y))
        res.update(checks=checks, n=x.numel(), form="torch.%s(x, out=y)" % op)
        return res
    return run


def unary_fwd_bwd(op):
    def run(ctx):
        checks = check_unary(ctx, op)
        x = inputs(ctx).clone().requires_grad_(True)
        f = getattr(ctx.torch, op)

        def step():
            f(x).sum().backward()
            x.grad = None

        res = ctx.time(step)
        res.update(checks=checks, n=x.numel(),
                   form="torch.%s(x).sum().backward(); x.grad = None" % op)
        return res
    return run


def mean(ctx):
    torch = ctx.torch
    x = inputs(ctx)
    n = x.numel()
    ctx.save("x.bin", x)
    ctx.tapegrad("mean", n, ctx.path("x.bin"), ctx.path("mean.bin"))
    got = ctx.load("mean.bin", 1)
    exact = float(x.double().mean())
    m = torch.mean(x)
    # float32 sums of 16M values: both must be within 1e-6 of the float64 mean (|x| < 8)
    checks = [common.compare("tapegrad mean vs float64", got, [exact], atol=1e-6),
              common.compare("torch mean vs float64", [float(m)], [exact], atol=1e-6)]
    res = ctx.time(lambda: torch.mean(x))
    res.update(checks=checks, n=n, form="torch.mean(x)")
    return res


WORKLOADS = [("sigmoid_fwd", unary_fwd("sigmoid")), ("sin_fwd", unary_fwd("sin")),
             ("exp_fwd", unary_fwd("exp")), ("sigmoid_fwd_bwd", unary_fwd_bwd("sigmoid")),
             ("sin_fwd_bwd", unary_fwd_bwd("sin")), ("exp_fwd_bwd", unary_fwd_bwd("exp")),
             ("mean", mean)]

if __name__ == "__main__":
    common.main(__doc__, WORKLOADS, setup=common.use_torch)
