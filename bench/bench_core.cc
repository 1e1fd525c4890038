// Autograd overhead and whole-op throughput, measured the way a user calls the API.
#include <benchmark/benchmark.h>

extern "C" {
#include <tapegrad.h>
}

// The seed graph: leaf x = 3 with grad, y = x^2, z = sin(y), backward, read x.grad, free all.
static void BM_seed_graph(benchmark::State &state)
{
    float g = 0.0f;
    for (auto _ : state) {
        tg_tensor *x = tg_requires_grad_(tg_scalar(3.0f), true);
        tg_tensor *y = tg_pow_scalar(x, 2.0f);
        tg_tensor *z = tg_sin(y);
        tg_backward(z, nullptr, false);
        g = tg_item(tg_grad(x));
        benchmark::DoNotOptimize(g);
        tg_release(z);
        tg_release(y);
        tg_release(x);
    }
    if (g > -5.46f || g < -5.47f)
        state.SkipWithError("wrong gradient");
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_seed_graph);

// The seed notebook's logistic step: z = w*x + b, sigmoid, BCE, backward for w and b.
static void BM_seed_logistic_step(benchmark::State &state)
{
    tg_tensor *x = tg_scalar(6.7f), *y = tg_scalar(0.0f);
    for (auto _ : state) {
        tg_tensor *w = tg_requires_grad_(tg_scalar(1.0f), true);
        tg_tensor *b = tg_requires_grad_(tg_scalar(0.0f), true);
        tg_tensor *wx = tg_mul(w, x);
        tg_tensor *z = tg_add(wx, b);
        tg_tensor *p = tg_sigmoid(z);
        tg_tensor *loss = tg_binary_cross_entropy(p, y, TG_REDUCE_MEAN);
        tg_backward(loss, nullptr, false);
        benchmark::DoNotOptimize(tg_item(tg_grad(w)));
        tg_release(loss), tg_release(p), tg_release(z), tg_release(wx);
        tg_release(b), tg_release(w);
    }
    tg_release(x), tg_release(y);
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_seed_logistic_step);

// One training step of a small network, as a user writes it: x [1024, 10] -> linear 32 -> relu
// -> linear 1 -> mse against y, zero_grad, backward, SGD step; on 1 and 2 threads. Its
// elementwise ops are exactly 32,768 floats, fed by matrix products on the calling thread:
// what splitting mid-size ops costs when their data sit in one core's cache.
static void BM_mlp_step(benchmark::State &state)
{
    int before = tg_get_num_threads();
    tg_set_num_threads(int(state.range(0)));
    const int64_t rows = 1024, in = 10, hidden = 32;
    const int64_t xs[2] = {rows, in}, ys[2] = {rows, 1}, w1[2] = {hidden, in}, b1[1] = {hidden},
                  w2[2] = {1, hidden}, b2[1] = {1};
    tg_tensor *x = tg_rand(2, xs, 1), *y = tg_rand(2, ys, 2);
    tg_tensor *p[4] = {tg_rand(2, w1, 3), tg_rand(1, b1, 4), tg_rand(2, w2, 5), tg_rand(1, b2, 6)};
    for (tg_tensor *t : p)
        tg_requires_grad_(t, true);
    tg_sgd_options o;
    tg_sgd_options_init(&o);
    o.lr = 0.01;
    tg_optimizer *opt = tg_sgd_new(p, 4, &o);
    for (auto _ : state) {
        tg_scope_begin();
        tg_tensor *h = tg_relu(tg_linear(x, p[0], p[1]));
        tg_tensor *loss = tg_mse_loss(tg_linear(h, p[2], p[3]), y, TG_REDUCE_MEAN);
        tg_optimizer_zero_grad(opt, true);
        if (tg_backward(loss, nullptr, false) != TG_OK || tg_optimizer_step(opt) != TG_OK)
            state.SkipWithError(tg_last_error());
        tg_scope_end();
    }
    tg_optimizer_free(opt);
    for (tg_tensor *t : p)
        tg_release(t);
    tg_release(x);
    tg_release(y);
    tg_set_num_threads(before);
}
BENCHMARK(BM_mlp_step)->Arg(1)->Arg(2)->ArgName("threads")->UseRealTime();

static tg_tensor *make_input(int64_t n)
{
    int64_t shape[1] = {n};
    tg_tensor *u = tg_rand(1, shape, 42);
    tg_tensor *x = tg_mul_scalar(tg_add_scalar(u, -0.5f), 16.0f); // U[-8, 8)
    tg_release(u);
    return x;
}

// Unary forward through the tensor API, output dropped each iteration (storage is recycled).
template <tg_tensor *(*Op)(tg_tensor *)> static void BM_unary(benchmark::State &state)
{
    int64_t n = state.range(0);
    tg_tensor *x = make_input(n);
    for (auto _ : state) {
        tg_tensor *y = Op(x);
        benchmark::DoNotOptimize(tg_data(y));
        tg_release(y);
    }
    tg_release(x);
    state.SetItemsProcessed(state.iterations() * n);
    state.SetBytesProcessed(state.iterations() * n * 2 * (int64_t)sizeof(float));
}
BENCHMARK_TEMPLATE(BM_unary, tg_sigmoid)->Arg(1 << 16)->Arg(1 << 24)->UseRealTime();
BENCHMARK_TEMPLATE(BM_unary, tg_sin)->Arg(1 << 16)->Arg(1 << 24)->UseRealTime();
BENCHMARK_TEMPLATE(BM_unary, tg_exp)->Arg(1 << 16)->Arg(1 << 24)->UseRealTime();

// Forward + backward through a sum: y = op(x); s = sum(y); backward.
template <tg_tensor *(*Op)(tg_tensor *)> static void fwd_bwd_step(tg_tensor *x)
{
    tg_tensor *y = Op(x);
    tg_tensor *s = tg_sum(y);
    tg_backward(s, nullptr, false);
    benchmark::DoNotOptimize(tg_data(tg_grad(x)));
    tg_grad_reset(x);
    tg_release(s);
    tg_release(y);
}

// One step runs before the timed loop: its fresh buffers (y, x.grad) are page-faulted in once,
// as in a program's first step, and the loop then measures the steady state, with them
// recycled. Without it a repetition that got only a few iterations (the harness interleaves
// repetitions of different benchmarks) averaged that one-time cost into its figure.
template <tg_tensor *(*Op)(tg_tensor *)> static void BM_unary_fwd_bwd(benchmark::State &state)
{
    int64_t n = state.range(0);
    tg_tensor *x = make_input(n);
    tg_requires_grad_(x, true);
    fwd_bwd_step<Op>(x);
    for (auto _ : state)
        fwd_bwd_step<Op>(x);
    tg_release(x);
    state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK_TEMPLATE(BM_unary_fwd_bwd, tg_sigmoid)->Arg(1 << 24)->UseRealTime();
BENCHMARK_TEMPLATE(BM_unary_fwd_bwd, tg_sin)->Arg(1 << 24)->UseRealTime();
BENCHMARK_TEMPLATE(BM_unary_fwd_bwd, tg_exp)->Arg(1 << 24)->UseRealTime();

// A mid-size add (64K and 256K floats) on 1 and 2 threads: what one hand-over to the pool
// costs against the work it splits. Ops follow each other as in a training step.
static void BM_add_threads(benchmark::State &state)
{
    int64_t n = state.range(0);
    int before = tg_get_num_threads();
    tg_set_num_threads(int(state.range(1)));
    tg_tensor *a = make_input(n), *b = make_input(n);
    for (auto _ : state) {
        tg_tensor *c = tg_add(a, b);
        benchmark::DoNotOptimize(tg_data(c));
        tg_release(c);
    }
    tg_release(a);
    tg_release(b);
    tg_set_num_threads(before);
    state.SetItemsProcessed(state.iterations() * n);
    state.SetBytesProcessed(state.iterations() * n * 3 * (int64_t)sizeof(float));
}
BENCHMARK(BM_add_threads)
    ->ArgsProduct({{1 << 16, 1 << 18}, {1, 2}})
    ->ArgNames({"n", "threads"})
    ->UseRealTime();

// Sums along one dim of 1M floats in several shapes: short rows ([65536, 16] over dim 1),
// a few wide rows ([16, 65536] over dim 0), a square matrix both ways and narrow columns
// ([262144, 4] over dim 0). Default threads.
static void BM_sum_dim(benchmark::State &state)
{
    int64_t shape[2] = {state.range(0), state.range(1)};
    int dim = int(state.range(2));
    tg_tensor *x = tg_randn(2, shape, 7);
    for (auto _ : state) {
        tg_tensor *s = tg_sum_dim(x, dim, false);
        benchmark::DoNotOptimize(tg_data(s));
        tg_release(s);
    }
    tg_release(x);
    state.SetItemsProcessed(state.iterations() * shape[0] * shape[1]);
    state.SetBytesProcessed(state.iterations() * shape[0] * shape[1] * (int64_t)sizeof(float));
}
BENCHMARK(BM_sum_dim)
    ->Args({65536, 16, 1})
    ->Args({16, 65536, 0})
    ->Args({1024, 1024, 0})
    ->Args({1024, 1024, 1})
    ->Args({262144, 4, 0})
    ->ArgNames({"rows", "cols", "dim"})
    ->UseRealTime();

// op of the transpose of a contiguous n x n matrix, its result dropped each iteration.
static void bench_on_transpose(benchmark::State &state, tg_tensor *(*op)(tg_tensor *))
{
    int64_t n = state.range(0), shape[2] = {n, n};
    tg_tensor *x = tg_randn(2, shape, 5), *t = tg_transpose(x, 0, 1);
    for (auto _ : state) {
        tg_tensor *c = op(t);
        benchmark::DoNotOptimize(tg_data(c));
        tg_release(c);
    }
    tg_release(t);
    tg_release(x);
    state.SetItemsProcessed(state.iterations() * n * n);
    state.SetBytesProcessed(state.iterations() * n * n * 2 * (int64_t)sizeof(float));
}

// tg_contiguous of the transpose of an n x n matrix: 1024 (rows 4 KB apart, the L1-set
// aliasing case) against 1000, and 4096 (64 MB, both sides in memory). Default threads
// (TAPEGRAD_NUM_THREADS=1 for one).
static void BM_transpose_copy(benchmark::State &state)
{
    bench_on_transpose(state, tg_contiguous);
}
BENCHMARK(BM_transpose_copy)->Arg(1000)->Arg(1024)->Arg(4096)->UseRealTime();

static tg_tensor *clamp_half(tg_tensor *t)
{
    return tg_clamp(t, -0.5f, 0.5f);
}

// tg_clamp of the transpose of a 1000 x 1000 matrix: the result is row-major, so the op reads
// the input in the result's order. Default threads.
static void BM_clamp_transposed(benchmark::State &state)
{
    bench_on_transpose(state, clamp_half);
}
BENCHMARK(BM_clamp_transposed)->Arg(1000)->UseRealTime();

// tg_contiguous of a [64, 128, 128] tensor permuted (2, 0, 1): its dense dim moves first.
static void BM_permute_copy(benchmark::State &state)
{
    int64_t shape[3] = {64, 128, 128};
    int dims[3] = {2, 0, 1};
    tg_tensor *x = tg_randn(3, shape, 6), *p = tg_permute(x, dims);
    for (auto _ : state) {
        tg_tensor *c = tg_contiguous(p);
        benchmark::DoNotOptimize(tg_data(c));
        tg_release(c);
    }
    int64_t n = tg_numel(x);
    tg_release(p);
    tg_release(x);
    state.SetItemsProcessed(state.iterations() * n);
    state.SetBytesProcessed(state.iterations() * n * 2 * (int64_t)sizeof(float));
}
BENCHMARK(BM_permute_copy)->UseRealTime();

// One optimizer step on a 1M-float parameter with a fixed gradient: SGD with momentum 0.9
// (arg 0) and Adam (arg 1). Default threads.
static void BM_optimizer_step(benchmark::State &state)
{
    int64_t n = 1 << 20;
    tg_tensor *p = tg_requires_grad_(tg_randn(1, &n, 8), true);
    tg_tensor *s = tg_sum(tg_mul(p, p));
    tg_backward(s, nullptr, false);
    tg_release(s);
    tg_sgd_options so;
    tg_sgd_options_init(&so);
    so.momentum = 0.9f;
    tg_adam_options ao;
    tg_adam_options_init(&ao);
    tg_optimizer *opt = state.range(0) ? tg_adam_new(&p, 1, &ao) : tg_sgd_new(&p, 1, &so);
    for (auto _ : state)
        tg_optimizer_step(opt);
    tg_optimizer_free(opt);
    tg_release(p);
    state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_optimizer_step)->Arg(0)->Arg(1)->ArgName("adam")->UseRealTime();

// An add with one operand transposed, 1024 x 1024: the transposed operand is read out of order.
static void BM_add_transposed(benchmark::State &state)
{
    int64_t shape[2] = {1024, 1024};
    tg_tensor *a = tg_randn(2, shape, 11), *b = tg_randn(2, shape, 12), *t = tg_transpose(a, 0, 1);
    for (auto _ : state) {
        tg_tensor *c = tg_add(t, b);
        benchmark::DoNotOptimize(tg_data(c));
        tg_release(c);
    }
    tg_release(t), tg_release(a), tg_release(b);
    state.SetItemsProcessed(state.iterations() * shape[0] * shape[1]);
}
BENCHMARK(BM_add_transposed)->UseRealTime();

// 1M floats as rows of width w (arg 0) plus one row [w] (arg 1 = 0) or one value per row
// [rows, 1] (arg 1 = 1): narrow rows take the blocked broadcast path.
static void BM_add_broadcast_narrow(benchmark::State &state)
{
    int64_t w = state.range(0), n = 1 << 20, shape[2] = {n / w, w};
    int64_t row[1] = {w}, col[2] = {n / w, 1};
    tg_tensor *a = tg_randn(2, shape, 16);
    tg_tensor *b = state.range(1) ? tg_randn(2, col, 17) : tg_randn(1, row, 17);
    for (auto _ : state) {
        tg_tensor *c = tg_add(a, b);
        benchmark::DoNotOptimize(tg_data(c));
        tg_release(c);
    }
    tg_release(a), tg_release(b);
    state.SetItemsProcessed(state.iterations() * n);
    state.SetBytesProcessed(state.iterations() * n * 2 * (int64_t)sizeof(float));
}
BENCHMARK(BM_add_broadcast_narrow)
    ->ArgsProduct({{4, 16, 64, 128, 256, 1024}, {0, 1}})
    ->ArgNames({"w", "column"})
    ->UseRealTime();

// A 1M-float product whose broadcast leaves runs of w floats to the N-d walk: [n / 256w, 256, w]
// times a per-channel [1, 256, 1] (outer = 0), or [n / 64w, 1, w] times [1, 64, 1] (outer = 1).
static void BM_mul_broadcast_short_runs(benchmark::State &state)
{
    int64_t w = state.range(0), n = 1 << 20;
    int64_t mid[3] = {1, state.range(1) ? 64 : 256, 1};
    int64_t full[3] = {n / (256 * w), 256, w}, outer[3] = {n / (64 * w), 1, w};
    tg_tensor *a = tg_randn(3, state.range(1) ? outer : full, 18), *b = tg_randn(3, mid, 19);
    for (auto _ : state) {
        tg_tensor *c = tg_mul(a, b);
        benchmark::DoNotOptimize(tg_data(c));
        tg_release(c);
    }
    tg_release(a), tg_release(b);
    state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_mul_broadcast_short_runs)
    ->ArgsProduct({{4, 64}, {0, 1}})
    ->ArgNames({"w", "outer"})
    ->UseRealTime();

// A loss and its backward on 1M floats: MSE (arg 0) and BCE on probabilities (arg 1), mean.
static void BM_loss_fwd_bwd(benchmark::State &state)
{
    int64_t n = 1 << 20;
    tg_tensor *u = tg_rand(1, &n, 13), *t = tg_rand(1, &n, 14);
    tg_tensor *p = tg_requires_grad_(tg_add_scalar(tg_mul_scalar(u, 0.98f), 0.01f), true);
    for (auto _ : state) {
        tg_tensor *l = state.range(0) ? tg_binary_cross_entropy(p, t, TG_REDUCE_MEAN)
                                      : tg_mse_loss(p, t, TG_REDUCE_MEAN);
        tg_backward(l, nullptr, false);
        benchmark::DoNotOptimize(tg_data(tg_grad(p)));
        tg_grad_reset(p);
        tg_release(l);
    }
    tg_release(u), tg_release(t), tg_release(p);
    state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_loss_fwd_bwd)->Arg(0)->Arg(1)->ArgName("bce")->UseRealTime();

// Sums of a transposed 1024 x 1024 view: over everything (arg 0) and over dim 0 (arg 1).
static void BM_sum_transposed(benchmark::State &state)
{
    int64_t shape[2] = {1024, 1024};
    tg_tensor *a = tg_randn(2, shape, 15), *t = tg_transpose(a, 0, 1);
    for (auto _ : state) {
        tg_tensor *s = state.range(0) ? tg_sum_dim(t, 0, false) : tg_sum(t);
        benchmark::DoNotOptimize(tg_data(s));
        tg_release(s);
    }
    tg_release(t), tg_release(a);
    state.SetItemsProcessed(state.iterations() * shape[0] * shape[1]);
}
BENCHMARK(BM_sum_transposed)->Arg(0)->Arg(1)->ArgName("dim0")->UseRealTime();

// The sum along dim 0 of x.transpose(0, 1) for a contiguous [n, n, n] x: read in place as the
// sum over x's middle dim.
static void BM_sum_dim_permuted(benchmark::State &state)
{
    int64_t n = state.range(0), shape[3] = {n, n, n};
    tg_tensor *x = tg_randn(3, shape, 20), *t = tg_transpose(x, 0, 1);
    for (auto _ : state) {
        tg_tensor *s = tg_sum_dim(t, 0, false);
        benchmark::DoNotOptimize(tg_data(s));
        tg_release(s);
    }
    tg_release(t), tg_release(x);
    state.SetItemsProcessed(state.iterations() * n * n * n);
}
BENCHMARK(BM_sum_dim_permuted)->Arg(64)->Arg(128)->UseRealTime();

// Two columns narrowed out of a [1M, 4] matrix: the sum along dim 0 (arg 0, read in place), the
// sum along dim 1 (arg 1, rows of two floats: copied first) and the contiguous copy (arg 2).
static void BM_narrowed_columns(benchmark::State &state)
{
    int64_t shape[2] = {1 << 20, 4};
    tg_tensor *x = tg_randn(2, shape, 21), *v = tg_narrow(x, 1, 0, 2);
    int op = (int)state.range(0);
    for (auto _ : state) {
        tg_tensor *s = op == 2 ? tg_contiguous(v) : tg_sum_dim(v, op, false);
        benchmark::DoNotOptimize(tg_data(s));
        tg_release(s);
    }
    tg_release(v), tg_release(x);
    state.SetItemsProcessed(state.iterations() * shape[0] * 2);
}
BENCHMARK(BM_narrowed_columns)->Arg(0)->Arg(1)->Arg(2)->ArgName("op")->UseRealTime();

// Forward and backward of sum(a + b), a [1024, 1024] and b a [1024] row broadcast over it: the
// one-value gradient of the sum reaches a.grad as a fill and b.grad as a sum of a broadcast value.
static void BM_add_row_fwd_bwd(benchmark::State &state)
{
    int64_t shape[2] = {1024, 1024}, n = 1024;
    tg_tensor *a = tg_requires_grad_(tg_randn(2, shape, 16), true);
    tg_tensor *b = tg_requires_grad_(tg_randn(1, &n, 17), true);
    for (auto _ : state) {
        tg_tensor *c = tg_add(a, b), *s = tg_sum(c);
        tg_backward(s, nullptr, false);
        benchmark::DoNotOptimize(tg_data(tg_grad(b)));
        tg_grad_reset(a), tg_grad_reset(b);
        tg_release(s), tg_release(c);
    }
    tg_release(a), tg_release(b);
    state.SetItemsProcessed(state.iterations() * shape[0] * shape[1]);
}
BENCHMARK(BM_add_row_fwd_bwd)->UseRealTime();

static void BM_mean(benchmark::State &state)
{
    int64_t n = state.range(0);
    tg_tensor *x = make_input(n);
    for (auto _ : state) {
        tg_tensor *m = tg_mean(x);
        benchmark::DoNotOptimize(tg_item(m));
        tg_release(m);
    }
    tg_release(x);
    state.SetItemsProcessed(state.iterations() * n);
    state.SetBytesProcessed(state.iterations() * n * (int64_t)sizeof(float));
}
BENCHMARK(BM_mean)->Arg(1 << 24)->UseRealTime();

// tg_matmul of two 1-D tensors of 1M floats (a dot) and of a [4096, 4096] matrix with a
// [4096] vector: products with one output column, done as dots of rows with the vector. Bytes
// are the operands read once.
static void BM_matmul_dot(benchmark::State &state)
{
    int64_t n = state.range(0);
    tg_tensor *a = tg_randn(1, &n, 21), *b = tg_randn(1, &n, 22);
    for (auto _ : state) {
        tg_tensor *d = tg_matmul(a, b);
        benchmark::DoNotOptimize(tg_item(d));
        tg_release(d);
    }
    tg_release(a), tg_release(b);
    state.SetItemsProcessed(state.iterations() * n);
    state.SetBytesProcessed(state.iterations() * 2 * n * (int64_t)sizeof(float));
}
BENCHMARK(BM_matmul_dot)->Arg(1 << 20)->UseRealTime();

static void BM_matmul_mv(benchmark::State &state)
{
    int64_t n = state.range(0), shape[2] = {n, n};
    tg_tensor *m = tg_randn(2, shape, 23), *x = tg_randn(1, &n, 24);
    for (auto _ : state) {
        tg_tensor *y = tg_matmul(m, x);
        benchmark::DoNotOptimize(tg_data(y));
        tg_release(y);
    }
    tg_release(m), tg_release(x);
    state.SetItemsProcessed(state.iterations() * n * n);
    state.SetBytesProcessed(state.iterations() * (n * n + 2 * n) * (int64_t)sizeof(float));
}
BENCHMARK(BM_matmul_mv)->Arg(4096)->UseRealTime();

BENCHMARK_MAIN();
