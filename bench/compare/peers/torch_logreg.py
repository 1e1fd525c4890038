#!/usr/bin/python3
"""PyTorch mirror of bench/bench_logreg.cc's BM_fused_loss_grad: one evaluation of the
logistic-regression loss and its gradient on 1M x 32 float32 rows (what every L-BFGS
iteration costs).

    loss_grad   BM_fused_loss_grad/threads:K   sum_i BCE(x_i . w + b, y_i), its gradient
                                               sum_i r_i x_i and sum_i r_i (r_i = dBCE/dz_i)

Two PyTorch forms are timed and the faster is reported:
    manual    torch.mv(X, w, out=z); z += b; loss = binary_cross_entropy_with_logits(z, y,
              reduction='sum'); torch.sigmoid(z, out=r); r -= y; torch.mv(X.t(), r, out=gw);
              gb = r.sum()
    autograd  binary_cross_entropy_with_logits(X @ w + b, y, reduction='sum').backward()
The check runs tg_logreg_loss_grad (the public entry point of the same fused pass, with
l2 = 0: mean loss and mean gradient) on the same X, y, w, b; both forms must agree with it
(relative 1e-4 for the loss, 1e-4 x the largest gradient entry for the gradient)."""
import math
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

FULL_ROWS, SMOKE_ROWS, COLS = 1000000, 1001, 32
B0 = 0.1


def problem(ctx):
    """Features with assorted means and scales, labels from a logistic model of them."""
    torch = ctx.torch
    n = SMOKE_ROWS if ctx.smoke else FULL_ROWS
    g = torch.Generator().manual_seed(1234567)
    j = torch.arange(COLS, dtype=torch.float32)
    v = torch.randn(n, COLS, generator=g)
    w = 0.3 * torch.sin(j)
    z = v @ w + 0.2
    y = (torch.rand(n, generator=g) < torch.sigmoid(z)).float()
    X = (j.remainder(5) + (1.0 + j.remainder(3)) * v).contiguous()
    return X, y, w


def loss_grad(ctx):
    torch = ctx.torch
    F = torch.nn.functional
    X, y, w = problem(ctx)
    n, d = X.shape
    Xt = X.t()
    z, r, gw = torch.empty(n), torch.empty(n), torch.empty(d)

    def manual():
        torch.mv(X, w, out=z)
        z.add_(B0)
        loss = F.binary_cross_entropy_with_logits(z, y, reduction="sum")
        torch.sigmoid(z, out=r)
        r.sub_(y)
        torch.mv(Xt, r, out=gw)
        return loss, gw, r.sum()

    wg = w.clone().requires_grad_(True)
    bg = torch.tensor(B0, requires_grad=True)

    def autograd():
        wg.grad = None
        bg.grad = None
        loss = F.binary_cross_entropy_with_logits(X @ wg + bg, y, reduction="sum")
        loss.backward()
        return loss, wg.grad, bg.grad

    ctx.save("X.bin", X)
    ctx.save("y.bin", y)
    ctx.save("w.bin", w)
    ctx.tapegrad("lossgrad", n, d, ctx.path("X.bin"), ctx.path("y.bin"), ctx.path("w.bin"),
                 repr(B0), ctx.path("lg.bin"))
    got = ctx.load("lg.bin", d + 2, dtype="<f8")
    checks = []
    for name, fn in (("manual", manual), ("autograd", autograd)):
        loss, g_w, g_b = fn()
        checks.append(common.compare("%s: mean loss" % name, got[:1], [float(loss) / n],
                                     rtol=1e-4))
        want = [float(v) / n for v in g_w.tolist()] + [float(g_b) / n]
        checks.append(common.compare("%s: mean gradient (w, b)" % name, got[1:], want,
                                     scale=1e-4))
    t_manual = ctx.time(manual)
    t_auto = ctx.time(autograd)
    forms = {"manual": "torch.mv(X, w, out=z) + b -> BCE-with-logits(sum) -> sigmoid(z) - y "
                       "-> torch.mv(X.t(), r, out=gw), r.sum()",
             "autograd": "binary_cross_entropy_with_logits(X @ w + b, y, reduction='sum')"
                         ".backward()"}
    best = min((t_manual, "manual"), (t_auto, "autograd"), key=lambda t: t[0]["seconds"])
    res = dict(best[0])
    res.update(checks=checks, rows=n, cols=d, form="%s (faster form): %s" % (best[1],
                                                                          forms[best[1]]),
               forms={"manual": t_manual["seconds"], "autograd": t_auto["seconds"]},
               mean_loss=float(got[0]), bytes_X=n * d * 4)
    if not math.isfinite(res["seconds"]):
        raise RuntimeError("no timing")
    return res


WORKLOADS = [("loss_grad", loss_grad)]

if __name__ == "__main__":
    common.main(__doc__, WORKLOADS, setup=common.use_torch)
