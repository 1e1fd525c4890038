#!/usr/bin/python3
"""PyTorch mirrors of bench/bench_matmul.cc.

    mm_N_fwd        BM_matmul/N          torch.matmul(a, b, out=c)            N = 256, 1024, 2048
    mm_N_fwd_bwd    BM_matmul_fwd_bwd/N  (a @ b).sum().backward()  (a, b require grad)
    bmm_B_N         BM_bmm/B/N           torch.bmm(a, b, out=c)  [B, N, N] @ [B, N, N]

Inputs are standard normal float32 (as the benchmarks' tg_randn). The check runs check_ops on
the same a and b: the product and both gradients of sum(a @ b) must agree to float32 rounding
(bound: 1e-5 x the largest magnitude of the result; both sides call OpenBLAS sgemm for 2-D)."""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

# full size -> smoke size
MM_SMOKE = {256: 17, 1024: 33, 2048: 65}
BMM_SMOKE = {(4096, 16): (64, 5), (1024, 32): (16, 9), (256, 64): (4, 17)}
SCALE = 1e-5

_mm = {}


def mm_inputs(ctx, n_full):
    n = MM_SMOKE[n_full] if ctx.smoke else n_full
    if n not in _mm:
        torch = ctx.torch
        a = torch.randn(n, n, generator=torch.Generator().manual_seed(1))
        b = torch.randn(n, n, generator=torch.Generator().manual_seed(2))
        _mm[n] = {"a": a, "b": b}
    return _mm[n]


def mm_check(ctx, n_full):
    d = mm_inputs(ctx, n_full)
    if "checks" in d:
        return d["checks"]
    torch = ctx.torch
    a, b = d["a"], d["b"]
    n = a.shape[0]
    ctx.save("a.bin", a)
    ctx.save("b.bin", b)
    ctx.tapegrad("matmul", n, n, n, ctx.path("a.bin"), ctx.path("b.bin"), ctx.path("mm.bin"))
    out = ctx.load("mm.bin", 3 * n * n)
    c = torch.empty(n, n)
    torch.matmul(a, b, out=c)
    ag = a.clone().requires_grad_(True)
    bg = b.clone().requires_grad_(True)
    (ag @ bg).sum().backward()
    nn = n * n
    d["checks"] = [common.compare("a @ b", out[:nn], c, scale=SCALE),
                   common.compare("d sum(a @ b) / da", out[nn:2 * nn], ag.grad, scale=SCALE),
                   common.compare("d sum(a @ b) / db", out[2 * nn:], bg.grad, scale=SCALE)]
    return d["checks"]


def mm_fwd(n_full):
    def run(ctx):
        checks = mm_check(ctx, n_full)
        d = mm_inputs(ctx, n_full)
        a, b = d["a"], d["b"]
        c = ctx.torch.empty_like(a)
        res = ctx.time(lambda: ctx.torch.matmul(a, b, out=c))
        res.update(checks=checks, n=a.shape[0], form="torch.matmul(a, b, out=c)")
        return res
    return run


def mm_fwd_bwd(n_full):
    def run(ctx):
        checks = mm_check(ctx, n_full)
        d = mm_inputs(ctx, n_full)
        a = d["a"].clone().requires_grad_(True)
        b = d["b"].clone().requires_grad_(True)

        def step():
            (a @ b).sum().backward()
            a.grad = None
            b.grad = None

        res = ctx.time(step)
        res.update(checks=checks, n=a.shape[0],
                   form="(a @ b).sum().backward(); a.grad = b.grad = None")
        return res
    return run


def bmm(batch_full, n_full):
    def run(ctx):
        torch = ctx.torch
        batch, n = BMM_SMOKE[(batch_full, n_full)] if ctx.smoke else (batch_full, n_full)
        a = torch.randn(batch, n, n, generator=torch.Generator().manual_seed(1))
        b = torch.randn(batch, n, n, generator=torch.Generator().manual_seed(2))
        ctx.save("a.bin", a)
        ctx.save("b.bin", b)
        ctx.tapegrad("bmm", batch, n, n, n, ctx.path("a.bin"), ctx.path("b.bin"),
                     ctx.path("bmm.bin"))
        out = ctx.load("bmm.bin", batch * n * n)
        c = torch.empty(batch, n, n)
        torch.bmm(a, b, out=c)
        checks = [common.compare("bmm a @ b", out, c, scale=SCALE)]
        res = ctx.time(lambda: torch.bmm(a, b, out=c))
        res.update(checks=checks, batch=batch, n=n, form="torch.bmm(a, b, out=c)")
        return res
    return run


WORKLOADS = ([("mm_%d_fwd" % n, mm_fwd(n)) for n in (256, 1024, 2048)] +
             [("mm_%d_fwd_bwd" % n, mm_fwd_bwd(n)) for n in (256, 1024, 2048)] +
             [("bmm_%d_%d" % bn, bmm(*bn)) for bn in ((4096, 16), (1024, 32), (256, 64))])

if __name__ == "__main__":
    common.main(__doc__, WORKLOADS, setup=common.use_torch)
