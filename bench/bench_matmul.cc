// Matrix products through the tensor API next to raw cblas_sgemm in the same binary, and
// batched small-matrix products. FLOP counts use 2*M*N*K per product.
#include <benchmark/benchmark.h>
#include <cblas.h>

extern "C" {
#include <tapegrad.h>
}

static tg_tensor *randn2(int64_t r, int64_t c, uint64_t seed)
{
    int64_t shape[2] = {r, c};
    return tg_randn(2, shape, seed);
}

static void set_flops(benchmark::State &state, double per_iter)
{
    state.counters["FLOP/s"] =
        benchmark::Counter(per_iter * (double)state.iterations(), benchmark::Counter::kIsRate);
}

// [m, k] @ [k, n] as one raw sgemm call into a preallocated output.
static void time_sgemm(benchmark::State &state, int64_t m, int64_t k, int64_t n)
{
    int64_t shape[2] = {m, n};
    tg_tensor *a = randn2(m, k, 1), *b = randn2(k, n, 2), *c = tg_zeros(2, shape);
    for (auto _ : state) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0f,
                    tg_data(a), (int)k, tg_data(b), (int)n, 0.0f, tg_data(c), (int)n);
        benchmark::ClobberMemory();
    }
    set_flops(state, 2.0 * m * n * k);
    tg_release(a), tg_release(b), tg_release(c);
}

// The same product through the API, a new output tensor per call.
static void time_matmul(benchmark::State &state, int64_t m, int64_t k, int64_t n)
{
    tg_tensor *a = randn2(m, k, 1), *b = randn2(k, n, 2);
    for (auto _ : state) {
        tg_tensor *c = tg_matmul(a, b);
        benchmark::DoNotOptimize(tg_data(c));
        tg_release(c);
    }
    set_flops(state, 2.0 * m * n * k);
    tg_release(a), tg_release(b);
}

static void BM_cblas_sgemm(benchmark::State &state)
{
    time_sgemm(state, state.range(0), state.range(0), state.range(0));
}
BENCHMARK(BM_cblas_sgemm)->Arg(256)->Arg(1024)->Arg(2048)->UseRealTime();

static void BM_matmul(benchmark::State &state)
{
    time_matmul(state, state.range(0), state.range(0), state.range(0));
}
BENCHMARK(BM_matmul)->Arg(256)->Arg(1024)->Arg(2048)->UseRealTime();

// X^T @ r for X [rows, 32] and r [rows, 1] (the gradient of X @ w with respect to w), through
// the API and as one sgemm call.
static void BM_cblas_sgemm_xt_r(benchmark::State &state)
{
    int64_t m = state.range(0), shape[2] = {32, 1};
    tg_tensor *x = randn2(m, 32, 1), *r = randn2(m, 1, 2), *c = tg_zeros(2, shape);
    for (auto _ : state) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, 32, 1, (int)m, 1.0f, tg_data(x), 32,
                    tg_data(r), 1, 0.0f, tg_data(c), 1);
        benchmark::ClobberMemory();
    }
    set_flops(state, 2.0 * m * 32);
    tg_release(x), tg_release(r), tg_release(c);
}
BENCHMARK(BM_cblas_sgemm_xt_r)->Arg(4096)->Arg(1000000)->UseRealTime();

static void BM_matmul_xt_r(benchmark::State &state)
{
    int64_t m = state.range(0);
    tg_tensor *x = randn2(m, 32, 1), *r = randn2(m, 1, 2), *xt = tg_transpose(x, 0, 1);
    for (auto _ : state) {
        tg_tensor *c = tg_matmul(xt, r);
        benchmark::DoNotOptimize(tg_data(c));
        tg_release(c);
    }
    set_flops(state, 2.0 * m * 32);
    tg_release(xt), tg_release(x), tg_release(r);
}
BENCHMARK(BM_matmul_xt_r)->Arg(4096)->Arg(1000000)->UseRealTime();

// Products with two small dims of three, through the API and as one sgemm call, side by side:
// tall ones, [M, K] @ [K, N] with K and N small (a layer of a small network over a batch), and
// deep ones, M and N small and a long K (that layer's weight gradient, x^T @ g), and one output
// column of short rows (a linear model's logits, X @ w).
static void skinny_args(benchmark::internal::Benchmark *b)
{
    b->Args({1024, 10, 32})->Args({1024, 32, 32})->Args({4096, 64, 16})->Args({100000, 32, 32});
    b->Args({10, 1024, 32})->Args({64, 4096, 64})->Args({32, 100000, 32});
    b->Args({1024, 32, 1})->Args({100000, 8, 1})->Args({1000000, 32, 1});
    b->ArgNames({"M", "K", "N"})->UseRealTime();
}

static void BM_cblas_sgemm_skinny(benchmark::State &state)
{
    time_sgemm(state, state.range(0), state.range(1), state.range(2));
}
BENCHMARK(BM_cblas_sgemm_skinny)->Apply(skinny_args);

static void BM_matmul_skinny(benchmark::State &state)
{
    time_matmul(state, state.range(0), state.range(1), state.range(2));
}
BENCHMARK(BM_matmul_skinny)->Apply(skinny_args);

// Forward and backward through sum(a @ b): three products of the same size.
static void BM_matmul_fwd_bwd(benchmark::State &state)
{
    int64_t n = state.range(0);
    tg_tensor *a = tg_requires_grad_(randn2(n, n, 1), true);
    tg_tensor *b = tg_requires_grad_(randn2(n, n, 2), true);
    for (auto _ : state) {
        tg_tensor *c = tg_matmul(a, b);
        tg_tensor *s = tg_sum(c);
        tg_backward(s, nullptr, false);
        benchmark::DoNotOptimize(tg_data(tg_grad(a)));
        tg_grad_reset(a), tg_grad_reset(b);
        tg_release(s), tg_release(c);
    }
    set_flops(state, 6.0 * n * n * n);
    tg_release(a), tg_release(b);
}
BENCHMARK(BM_matmul_fwd_bwd)->Arg(256)->Arg(1024)->Arg(2048)->UseRealTime();

// Batched: [batch, n, n] @ [batch, n, n].
static void BM_bmm(benchmark::State &state)
{
    int64_t batch = state.range(0), n = state.range(1);
    int64_t shape[3] = {batch, n, n};
    tg_tensor *a = tg_randn(3, shape, 1), *b = tg_randn(3, shape, 2);
    for (auto _ : state) {
        tg_tensor *c = tg_matmul(a, b);
        benchmark::DoNotOptimize(tg_data(c));
        tg_release(c);
    }
    set_flops(state, 2.0 * batch * n * n * n);
    tg_release(a), tg_release(b);
}
BENCHMARK(BM_bmm)->Args({4096, 16})->Args({1024, 32})->Args({256, 64})->UseRealTime();

BENCHMARK_MAIN();
