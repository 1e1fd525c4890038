// Logistic regression on 1M x 32 float32 (128 MB): one fused loss + gradient pass (1 and 2
// threads) against memcpy of the same bytes in the same binary, the same pass through autograd
// (matmul + BCE-with-logits + backward), and full training to convergence (standardize +
// L-BFGS). Also the pass on a small X at several row widths, for its arithmetic alone.
//
// bytes_per_second counts the 128 MB of X once per iteration for every benchmark, so the
// numbers compare directly: the fused pass reads X once; memcpy reads and writes it.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

extern "C" {
#include "core/pages.h"
#include "tapegrad.h"
#include "tapegrad/train.h"
#include "train/fused.h"
}

namespace
{

constexpr int64_t kRows = 1000000, kCols = 32;
constexpr int64_t kBytes = kRows * kCols * int64_t(sizeof(float));

// Floats aligned as tapegrad aligns its own tensors (64 bytes): a std::vector's buffer can sit
// 16 bytes off a cache line, and then every 64-byte load of a row straddles two lines, which
// no tensor that tapegrad or its CSV reader allocates would do. From 2 MB up they ask for 2 MB
// pages, as tapegrad's large buffers (X from the CSV reader among them) do.
struct Floats {
    explicit Floats(size_t n)
        : n_(n),
          p_(static_cast<float *>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64)))
    {
        if (!p_)
            std::abort();
        tg_advise_huge_pages(p_, n * sizeof(float));
    }
    ~Floats() { std::free(p_); }
    Floats(const Floats &) = delete;
    Floats &operator=(const Floats &) = delete;
    float &operator[](size_t i) { return p_[i]; }
    float *data() { return p_; }
    const float *data() const { return p_; }
    size_t size() const { return n_; }

  private:
    size_t n_;
    float *p_;
};

struct Problem {
    Floats X, y;
    std::vector<float> w;
    Problem() : X(size_t(kRows * kCols)), y(size_t(kRows)), w(size_t(kCols))
    {
        // Features with assorted means and scales; labels from a logistic model of them.
        uint64_t s = 0x1234567u;
        auto uniform = [&s] {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            return double(s >> 11) * 0x1p-53;
        };
        for (int64_t j = 0; j < kCols; j++)
            w[size_t(j)] = float(0.3 * std::sin(double(j)));
        for (int64_t i = 0; i < kRows; i++) {
            double z = 0.2;
            for (int64_t j = 0; j < kCols; j++) {
                double v = std::sqrt(-2.0 * std::log(uniform() + 1e-300)) *
                           std::cos(6.283185307179586 * uniform());
                z += v * w[size_t(j)];
                X[size_t(i * kCols + j)] = float(double(j % 5) + (1.0 + double(j % 3)) * v);
            }
            y[size_t(i)] = uniform() < 1.0 / (1.0 + std::exp(-z)) ? 1.0f : 0.0f;
        }
    }
};

const Problem &problem()
{
    static Problem p;
    return p;
}

void BM_memcpy(benchmark::State &state)
{
    const Problem &p = problem();
    Floats dst(p.X.size());
    // Fault the destination in first, as X was when it was generated: otherwise the timed
    // copies include the first touch of 32768 fresh pages, which on a VM whose host backs
    // memory lazily made one copy take 255 ms instead of 9 ms.
    std::memset(dst.data(), 0, size_t(kBytes));
    for (auto _ : state) {
        std::memcpy(dst.data(), p.X.data(), size_t(kBytes));
        benchmark::DoNotOptimize(dst.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * kBytes);
}
BENCHMARK(BM_memcpy)->Unit(benchmark::kMillisecond)->UseRealTime();

// One evaluation of sum BCE and its gradient: what every L-BFGS iteration costs.
void BM_fused_loss_grad(benchmark::State &state)
{
    const Problem &p = problem();
    int before = tg_get_num_threads();
    tg_set_num_threads(int(state.range(0)));
    lr_pass pass;
    if (!lr_pass_init(&pass, kRows, kCols, 1.0f)) {
        state.SkipWithError(tg_last_error());
        return;
    }
    lr_pass_bind(&pass, p.X.data(), p.y.data(), kRows);
    std::vector<double> g(size_t(kCols + 1));
    double loss = 0.0;
    for (auto _ : state) {
        loss = lr_pass_run(&pass, p.w.data(), 0.1f, g.data());
        benchmark::DoNotOptimize(loss);
    }
    state.SetBytesProcessed(state.iterations() * kBytes);
    state.counters["mean_loss"] = loss / double(kRows);
    lr_pass_free(&pass);
    tg_set_num_threads(before);
}
// 1 and 2 threads, and every CPU when there are more (the library's default thread count: the
// CPUs the process may use, or TAPEGRAD_NUM_THREADS), the thread counts bench/compare/run.py
// asks for on any machine.
void thread_counts(benchmark::internal::Benchmark *b)
{
    b->Arg(1)->Arg(2);
    if (tg_get_num_threads() > 2)
        b->Arg(tg_get_num_threads());
}
BENCHMARK(BM_fused_loss_grad)
    ->Apply(thread_counts)
    ->ArgName("threads")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The pass's own arithmetic by row width: one thread, X of 512 KB (131072 floats, in L2 after
// the first pass) cut into rows of d features. items_per_second counts rows. Widths that do
// not fill their SIMD vectors read the last one whole in the steady state; those that do
// (16, 32) show the cost without any mask.
void BM_fused_pass_width(benchmark::State &state)
{
    const int64_t d = state.range(0), rows = 131072 / d;
    Floats X{size_t(rows * d)}, y{size_t(rows)};
    uint64_t s = 0x9e3779b97f4a7c15u;
    auto uniform = [&s] {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        return float(double(s >> 11) * 0x1p-53);
    };
    for (int64_t i = 0; i < rows * d; i++)
        X[size_t(i)] = 4.0f * uniform() - 2.0f;
    for (int64_t i = 0; i < rows; i++)
        y[size_t(i)] = uniform() < 0.5f ? 1.0f : 0.0f;
    std::vector<float> w(static_cast<size_t>(d));
    for (int64_t j = 0; j < d; j++)
        w[size_t(j)] = 0.5f * uniform() - 0.25f;
    int before = tg_get_num_threads();
    tg_set_num_threads(1);
    lr_pass pass;
    if (!lr_pass_init(&pass, rows, d, 1.0f)) {
        state.SkipWithError(tg_last_error());
        tg_set_num_threads(before);
        return;
    }
    lr_pass_bind(&pass, X.data(), y.data(), rows);
    std::vector<double> g(size_t(d + 1));
    for (auto _ : state)
        benchmark::DoNotOptimize(lr_pass_run(&pass, w.data(), 0.1f, g.data()));
    state.SetItemsProcessed(state.iterations() * rows);
    lr_pass_free(&pass);
    tg_set_num_threads(before);
}
BENCHMARK(BM_fused_pass_width)
    ->ArgName("d")
    ->Arg(2)
    ->Arg(8)
    ->Arg(12)
    ->Arg(16)
    ->Arg(24)
    ->Arg(32)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// The same numbers through the public tensor API (allocates its work space every call).
void BM_public_loss_grad(benchmark::State &state)
{
    const Problem &p = problem();
    int64_t shape[2] = {kRows, kCols}, n = kRows;
    tg_tensor *X = tg_from_data(p.X.data(), 2, shape), *y = tg_from_data(p.y.data(), 1, &n);
    std::vector<double> w(p.w.begin(), p.w.end());
    std::vector<double> g(static_cast<size_t>(kCols));
    double loss = 0.0, gb = 0.0;
    for (auto _ : state) {
        if (tg_logreg_loss_grad(X, y, w.data(), 0.1, 0.0, 1.0, &loss, g.data(), &gb) != TG_OK) {
            state.SkipWithError(tg_last_error());
            break;
        }
        benchmark::DoNotOptimize(loss);
    }
    state.SetBytesProcessed(state.iterations() * kBytes);
    tg_release(X);
    tg_release(y);
}
BENCHMARK(BM_public_loss_grad)->Unit(benchmark::kMillisecond)->UseRealTime();

// The unfused path: z = X w + b, mean BCE-with-logits, backward to w and b.
void BM_autograd_loss_grad(benchmark::State &state)
{
    const Problem &p = problem();
    int64_t shape[2] = {kRows, kCols}, wshape[2] = {kCols, 1}, n = kRows;
    tg_tensor *X = tg_from_data(p.X.data(), 2, shape), *y = tg_from_data(p.y.data(), 1, &n);
    tg_tensor *W = tg_requires_grad_(tg_from_data(p.w.data(), 2, wshape), true);
    tg_tensor *B = tg_requires_grad_(tg_scalar(0.1f), true);
    for (auto _ : state) {
        tg_scope_begin();
        tg_grad_reset(W);
        tg_grad_reset(B);
        tg_tensor *z = tg_add(tg_reshape(tg_matmul(X, W), 1, &n), B);
        tg_tensor *L = tg_bce_with_logits(z, y, nullptr, TG_REDUCE_MEAN);
        if (!L || tg_backward(L, nullptr, false) != TG_OK) {
            state.SkipWithError(tg_last_error());
            tg_scope_end();
            break;
        }
        benchmark::DoNotOptimize(tg_item(L));
        tg_scope_end();
    }
    state.SetBytesProcessed(state.iterations() * kBytes);
    tg_release(X), tg_release(y), tg_release(W), tg_release(B);
}
BENCHMARK(BM_autograd_loss_grad)->Unit(benchmark::kMillisecond)->UseRealTime();

// Standardize + L-BFGS to convergence (tol 1e-4 on the mean-loss gradient, C = 1), as
// `tapegrad train` runs it; the copy of X the fit makes (in_place off) is included.
void BM_train_lbfgs(benchmark::State &state)
{
    const Problem &p = problem();
    int64_t shape[2] = {kRows, kCols}, n = kRows;
    tg_tensor *X = tg_from_data(p.X.data(), 2, shape), *y = tg_from_data(p.y.data(), 1, &n);
    tg_logreg_options o;
    tg_logreg_options_init(&o);
    o.metrics = false;
    tg_logreg_result r{};
    for (auto _ : state) {
        tg_logreg_model m;
        tg_logreg_model_init(&m);
        if (tg_logreg_fit(X, y, &o, &m, &r) != TG_OK) {
            state.SkipWithError(tg_last_error());
            break;
        }
        tg_logreg_model_free(&m);
        state.counters["iterations"] = r.iterations;
        state.counters["passes"] = double(r.evaluations);
        state.counters["log_loss"] = r.train_loss;
        tg_logreg_result_free(&r);
    }
    state.SetBytesProcessed(state.iterations() * kBytes);
    tg_release(X);
    tg_release(y);
}
BENCHMARK(BM_train_lbfgs)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);

} // namespace

BENCHMARK_MAIN();
