// Kernel throughput per family: every entry of the kernel table at 64K elements (in cache) and
// 16M (memory bound), next to a memcpy of 16M floats, the bandwidth ceiling for a streaming op.
// Items are elements; bytes are the bytes the kernel reads plus writes (axpy reads and writes y,
// so it moves three arrays). lr_block runs over rows of 32 features, 64K and 16M floats of X,
// and counts X alone: its items are X's elements and its bytes X read once. row_sums and
// col_sums run over rows of 16 floats, 64K and 16M floats of x, the same way: items are x's
// elements, bytes x read once plus the sums written. gemm_small runs over a batch of n x n x n
// products (1 MB per operand) and reports FLOP/s (2 n^3 per product).
//
//   bench_kernels --benchmark_filter='avx512/(sigmoid|sin)/16M|memcpy' --benchmark_repetitions=5
//   bench_kernels --benchmark_filter='avx512/gemm_small' --benchmark_repetitions=5
//   bench_kernels --benchmark_filter='/16M' --benchmark_min_time=0.05    # every kernel, quickly
//
// A full run at default settings takes about 7 minutes on an AVX-512 machine (381 benchmarks,
// mostly the 16M cases and their buffer fills); CI runs only the names bench/compare/run.py asks
// for.
//
// The families come from their init functions directly, so one binary measures all of them;
// BM_sin_16M_threads and BM_neg_16M_threads use the table in force (tg_kern(), TAPEGRAD_ISA)
// across the thread pool.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

extern "C" {
#include "core/pages.h"
#include "core/parallel.h"
#include "kernels.h"
}

namespace
{

constexpr int64_t kSmall = int64_t{1} << 16;
constexpr int64_t kLarge = int64_t{1} << 24;
constexpr int64_t kMapSumsBlock = 16384;

// A 64-byte aligned float buffer, filled so no page fault lands inside a timed loop. Asks for
// 2 MB pages from 2 MB up, as the library's own large buffers do, so that a kernel and the
// memcpy it is held against run on the pages a tensor of that size would have.
struct Buffer {
    explicit Buffer(int64_t n, float lo, float hi, uint32_t seed)
        : p(static_cast<float *>(
              std::aligned_alloc(64, (static_cast<size_t>(n) * 4 + 63) / 64 * 64)))
    {
        tg_advise_huge_pages(p, static_cast<size_t>(n) * 4);
        std::mt19937 rng(seed);
        std::uniform_real_distribution<float> d(lo, hi);
        for (int64_t i = 0; i < n; i++)
            p[i] = d(rng);
    }
    ~Buffer() { std::free(p); }
    Buffer(const Buffer &) = delete;
    Buffer &operator=(const Buffer &) = delete;
    float *p;
};

// The same test as the library's dispatcher: every extension the family's files are built with.
bool cpu_runs(const std::string &name)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (name == "avx2")
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (name == "avx512")
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
#if defined(__aarch64__)
    if (name == "neon")
        return true;
#endif
    return name == "scalar";
}

int init_scalar(tg_kernels *k)
{
    tg_kernels_init_scalar(k);
    return 1;
}

std::vector<tg_kernels> available_families()
{
    struct Fam {
        const char *name;
        int (*init)(tg_kernels *);
    } fams[] = {{"scalar", init_scalar},
                {"avx2", tg_kernels_init_avx2},
                {"avx512", tg_kernels_init_avx512},
                {"neon", tg_kernels_init_neon}};
    std::vector<tg_kernels> out;
    for (const Fam &f : fams) {
        tg_kernels k;
        if (cpu_runs(f.name) && f.init(&k))
            out.push_back(k);
    }
    return out;
}

void set_counters(benchmark::State &state, int64_t n, int arrays)
{
    state.SetItemsProcessed(state.iterations() * n);
    state.SetBytesProcessed(state.iterations() * n * arrays * static_cast<int64_t>(sizeof(float)));
}

// The range an array's elements are drawn from.
struct Range {
    float lo, hi;
};

// One call of a kernel on the case's arrays, in the order the case lists them.
using Call = std::function<void(float *const *a, int64_t n)>;

// A streaming kernel benchmark: the arrays the call takes (inputs with the range the kernel
// expects, e.g. positive for log; outputs drawn from [0, 1) so their pages are in place), how
// many arrays it moves per element (reads plus writes), the timed call, and an optional set-up
// that makes inputs consistent after the fill (0/1 targets, y = sigmoid(x)).
struct Case {
    std::string name;
    std::vector<Range> arrays;
    int traffic;
    Call call;
    Call setup;
};

void bench_case(benchmark::State &state, const Case &c, int64_t n)
{
    std::vector<std::unique_ptr<Buffer>> bufs;
    std::vector<float *> a;
    for (size_t i = 0; i < c.arrays.size(); i++) {
        // Seeds by position, so an array's contents do not depend on the other cases.
        bufs.push_back(std::make_unique<Buffer>(n, c.arrays[i].lo, c.arrays[i].hi,
                                                static_cast<uint32_t>(i + 1)));
        a.push_back(bufs.back()->p);
    }
    if (c.setup)
        c.setup(a.data(), n);
    for (auto _ : state) {
        c.call(a.data(), n);
        benchmark::ClobberMemory();
    }
    set_counters(state, n, c.traffic);
}

// The exponents of pow_scalar and its backward: 2, 0.5 and -1 take the kernels' shortcuts (x*x,
// sqrt, 1/x), 1.7 the general path. Names keep the value: pow_scalar_0.5.
constexpr float kPowExponents[] = {2.0f, 0.5f, -1.0f, 1.7f};

std::string exponent_name(float e)
{
    char s[16];
    std::snprintf(s, sizeof s, "%g", static_cast<double>(e));
    return s;
}

// Every streaming entry of k's table. The lambdas capture the entry's function pointer; the
// std::function around it costs one indirect call per n elements, nothing per element.
std::vector<Case> kernel_cases(const tg_kernels *k)
{
    const Range out{0, 1}, wide{-8, 8}, unit{-1, 1}, pos{0.01f, 100}, base{0.1f, 10};
    std::vector<Case> cs;

    const struct {
        const char *name;
        tg_unary_fn fn;
        Range x;
    } unary[] = {{"neg", k->neg, wide},        {"abs", k->abs, wide},   {"relu", k->relu, wide},
                 {"exp", k->exp, wide},        {"log", k->log, pos},    {"sin", k->sin, wide},
                 {"cos", k->cos, wide},        {"tanh", k->tanh, wide}, {"sqrt", k->sqrt, pos},
                 {"sigmoid", k->sigmoid, wide}};
    for (const auto &u : unary)
        cs.push_back(
            {u.name, {u.x, out}, 2, [f = u.fn](float *const *a, int64_t n) { f(a[0], a[1], n); }});
    // map_sums with the family's own kernel (its op inlined, the sums taken in registers) in
    // the blocks of 16K floats that tg_sum uses for 16M: against the plain kernel, the cost of
    // keeping a large output's sum.
    for (const auto &u : unary) {
        if (u.fn != k->sigmoid && u.fn != k->sin && u.fn != k->exp)
            continue;
        auto sums = std::make_shared<std::vector<float>>(kLarge / kMapSumsBlock + 1);
        cs.push_back({std::string("map_sums_") + u.name,
                      {u.x, out},
                      2,
                      [m = k->map_sums, f = u.fn, sums](float *const *a, int64_t n) {
                          m(f, a[0], a[1], n, kMapSumsBlock, sums->data());
                      }});
    }
    // x spans both bounds, so both clamps and the pass-through all occur.
    cs.push_back({"clamp", {{-2, 2}, out}, 2, [f = k->clamp](float *const *a, int64_t n) {
                      f(a[0], a[1], n, -1.0f, 1.0f);
                  }});
    for (float e : kPowExponents)
        cs.push_back({"pow_scalar_" + exponent_name(e),
                      {base, out},
                      2,
                      [f = k->pow_scalar, e](float *const *a, int64_t n) { f(a[0], a[1], n, e); }});

    const struct {
        const char *name;
        tg_binary_vv_fn fn;
        Range a, b;
    } vv[] = {{"add_vv", k->add_vv, wide, wide},
              {"sub_vv", k->sub_vv, wide, wide},
              {"mul_vv", k->mul_vv, wide, wide},
              {"div_vv", k->div_vv, wide, base},
              {"pow_vv", k->pow_vv, base, {-4, 4}}};
    for (const auto &v : vv)
        cs.push_back({v.name, {v.a, v.b, out}, 3, [f = v.fn](float *const *a, int64_t n) {
                          f(a[0], a[1], a[2], n);
                      }});
    // The scalars are general values: 1.7 is not one of pow's shortcut exponents.
    const struct {
        const char *name;
        tg_binary_vs_fn fn;
        Range a;
        float b;
    } vs[] = {{"add_vs", k->add_vs, wide, 1.5f},
              {"mul_vs", k->mul_vs, wide, 1.5f},
              {"div_vs", k->div_vs, wide, 1.5f},
              {"pow_vs", k->pow_vs, base, 1.7f}};
    for (const auto &v : vs)
        cs.push_back({v.name, {v.a, out}, 2, [f = v.fn, s = v.b](float *const *a, int64_t n) {
                          f(a[0], s, a[1], n);
                      }});
    const struct {
        const char *name;
        tg_binary_sv_fn fn;
        float a;
        Range b;
    } sv[] = {{"sub_sv", k->sub_sv, 1.5f, wide},
              {"div_sv", k->div_sv, 1.5f, base},
              {"pow_sv", k->pow_sv, 1.5f, wide}};
    for (const auto &v : sv)
        cs.push_back({v.name, {v.b, out}, 2, [f = v.fn, s = v.a](float *const *a, int64_t n) {
                          f(s, a[0], a[1], n);
                      }});

    // Backward entries: the saved value v (x or y, per kernels.h) in the range the forward op
    // gives it, then gy, then gx. relu_bwd's v is relu's output, half of it exactly 0.
    const struct {
        const char *name;
        tg_unary_bwd_fn fn;
        Range v;
        Call setup;
    } bwd[] = {{"sigmoid_bwd", k->sigmoid_bwd, wide},
               {"tanh_bwd", k->tanh_bwd, unit},
               {"sqrt_bwd", k->sqrt_bwd, base},
               {"relu_bwd", k->relu_bwd, wide,
                [r = k->relu](float *const *a, int64_t n) { r(a[0], a[0], n); }},
               {"sin_bwd", k->sin_bwd, wide},
               {"cos_bwd", k->cos_bwd, wide},
               {"abs_bwd", k->abs_bwd, wide}};
    for (const auto &b : bwd)
        cs.push_back({b.name,
                      {b.v, unit, out},
                      3,
                      [f = b.fn](float *const *a, int64_t n) { f(a[0], a[1], a[2], n); },
                      b.setup});
    // The same through bwd_uniform, the backward of a sum: one gradient value, two arrays moved.
    for (const auto &b : bwd)
        cs.push_back({std::string(b.name) + "_uniform",
                      {b.v, out},
                      2,
                      [u = k->bwd_uniform, f = b.fn](float *const *a, int64_t n) {
                          u(f, a[0], 0.5f, a[1], n);
                      },
                      b.setup});
    // y = sigmoid(x) of x in [-8, 8] stays below 1, so the kernel reads y and gy only, never x:
    // three arrays moved, as sigmoid_bwd.
    cs.push_back({"sigmoid_bwd_y",
                  {out, wide, unit, out},
                  3,
                  [f = k->sigmoid_bwd_y](float *const *a, int64_t n) {
                      f(a[0], a[1], a[2], false, a[3], n);
                  },
                  [s = k->sigmoid](float *const *a, int64_t n) { s(a[1], a[0], n); }});
    // The backward of sum(sigmoid(x)): one gradient value for all, two arrays moved.
    cs.push_back(
        {"sigmoid_bwd_y_uniform",
         {out, wide, unit, out},
         2,
         [f = k->sigmoid_bwd_y](float *const *a, int64_t n) { f(a[0], a[1], a[2], true, a[3], n); },
         [s = k->sigmoid](float *const *a, int64_t n) { s(a[1], a[0], n); }});
    cs.push_back(
        {"clamp_bwd", {{-2, 2}, unit, out}, 3, [f = k->clamp_bwd](float *const *a, int64_t n) {
             f(a[0], a[1], a[2], n, -1.0f, 1.0f);
         }});
    for (float e : kPowExponents)
        cs.push_back({"pow_scalar_bwd_" + exponent_name(e),
                      {base, unit, out},
                      3,
                      [f = k->pow_scalar_bwd, e](float *const *a, int64_t n) {
                          f(a[0], a[1], a[2], n, e);
                      }});

    cs.push_back({"sum", {unit}, 1, [f = k->sum](float *const *a, int64_t n) {
                      benchmark::DoNotOptimize(f(a[0], n));
                  }});
    // Reads two arrays, writes nothing.
    cs.push_back({"dot", {unit, unit}, 2, [f = k->dot](float *const *a, int64_t n) {
                      benchmark::DoNotOptimize(f(a[0], a[1], n));
                  }});
    // y grows by at most 0.5 per call: no overflow or subnormals in any run's length.
    cs.push_back({"axpy", {unit, unit}, 3, [f = k->axpy](float *const *a, int64_t n) {
                      f(0.5f, a[0], a[1], n);
                  }});
    cs.push_back(
        {"fill", {out}, 1, [f = k->fill](float *const *a, int64_t n) { f(a[0], 0.25f, n); }});
    cs.push_back(
        {"copy", {unit, out}, 2, [f = k->copy](float *const *a, int64_t n) { f(a[0], a[1], n); }});
    // Both outputs: reads logits and targets, writes loss and grad.
    cs.push_back({"bce_logits",
                  {wide, out, out, out},
                  4,
                  [f = k->bce_logits](float *const *a, int64_t n) {
                      benchmark::DoNotOptimize(f(a[0], a[1], a[2], a[3], n, 1.0f));
                  },
                  [](float *const *a, int64_t n) {
                      for (int64_t i = 0; i < n; i++)
                          a[1][i] = a[1][i] < 0.5f ? 0.0f : 1.0f;
                  }});
    return cs;
}

// lr_block over the rows of X [floats / d, d], gradient included, as the fused trainer calls it.
void bench_lr_block(benchmark::State &state, const tg_kernels *k, int64_t floats)
{
    constexpr int64_t d = 32;
    const int64_t m = floats / d;
    Buffer X(floats, -1, 1, 1), w(d, -0.5f, 0.5f, 2), y(m, 0, 1, 3), g(d + 1, 0, 1, 4);
    for (int64_t i = 0; i < m; i++)
        y.p[i] = y.p[i] < 0.5f ? 0.0f : 1.0f;
    for (auto _ : state) {
        benchmark::DoNotOptimize(k->lr_block(X.p, m, d, w.p, 0.1f, y.p, 1.0f, g.p));
        benchmark::ClobberMemory();
    }
    set_counters(state, floats, 1);
}

// A reduction's counters: items are the elements summed; bytes the input read once and the
// `sums` results written.
static void set_sum_counters(benchmark::State &state, int64_t floats, int64_t sums)
{
    state.SetItemsProcessed(state.iterations() * floats);
    state.SetBytesProcessed(state.iterations() * (floats + sums) *
                            static_cast<int64_t>(sizeof(float)));
}

// Rows of 16 floats: a sum over a short last dim (sum_dim), one AVX-512 vector or two AVX2 or
// four NEON vectors per row, well inside TG_ROW_SUMS_MAX (64). x [floats / 16, 16] is read
// once and one float written per row; items are x's elements.
constexpr int64_t kRowSumsLen = 16;
static_assert(kRowSumsLen <= TG_ROW_SUMS_MAX, "row_sums takes rows of at most TG_ROW_SUMS_MAX");

void bench_row_sums(benchmark::State &state, const tg_kernels *k, int64_t floats)
{
    const int64_t rows = floats / kRowSumsLen;
    Buffer x(floats, -1, 1, 1), out(rows, 0, 1, 2);
    for (auto _ : state) {
        k->row_sums(x.p, rows, kRowSumsLen, out.p);
        benchmark::ClobberMemory();
    }
    set_sum_counters(state, floats, rows);
}

// The column sums of a row-major [floats / 16, 16], densely packed (ld = width): sum_dim over
// the first dim of a narrow matrix, 16 columns as one AVX-512 band or two AVX2 ones, inside
// TG_COL_SUMS_MAX (64). x is read once and the 16 sums written; items are x's elements.
constexpr int64_t kColSumsWidth = 16;
static_assert(kColSumsWidth <= TG_COL_SUMS_MAX, "col_sums takes at most TG_COL_SUMS_MAX columns");

void bench_col_sums(benchmark::State &state, const tg_kernels *k, int64_t floats)
{
    const int64_t rows = floats / kColSumsWidth;
    Buffer x(floats, -1, 1, 1), y(kColSumsWidth, 0, 1, 2);
    for (auto _ : state) {
        k->col_sums(x.p, rows, kColSumsWidth, kColSumsWidth, y.p);
        benchmark::ClobberMemory();
    }
    set_sum_counters(state, floats, kColSumsWidth);
}

// C = A op(B) for a batch of n x n matrices, one gemm_small call each, as batched matmul does.
void bench_gemm_small(benchmark::State &state, const tg_kernels *k, int64_t n, int tb)
{
    const int64_t mat = n * n, batch = (int64_t{1} << 18) / mat;
    Buffer a(batch * mat, -1, 1, 1), b(batch * mat, -1, 1, 2), c(batch * mat, 0, 1, 3);
    for (auto _ : state) {
        for (int64_t i = 0; i < batch; i++)
            k->gemm_small(n, n, n, a.p + i * mat, n, 0, b.p + i * mat, n, tb, c.p + i * mat, n);
        benchmark::ClobberMemory();
    }
    state.counters["FLOP/s"] = benchmark::Counter(2.0 * static_cast<double>(n * mat * batch) *
                                                      static_cast<double>(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}

void BM_memcpy(benchmark::State &state)
{
    Buffer x(kLarge, -1, 1, 1), y(kLarge, 0, 1, 2);
    for (auto _ : state) {
        std::memcpy(y.p, x.p, static_cast<size_t>(kLarge) * sizeof(float));
        benchmark::ClobberMemory();
    }
    set_counters(state, kLarge, 2);
}

struct MapJob {
    tg_unary_fn fn;
    const float *x;
    float *y;
};

void map_range(void *ctx, int64_t begin, int64_t end)
{
    const MapJob *j = static_cast<const MapJob *>(ctx);
    j->fn(j->x + begin, j->y + begin, end - begin);
}

// A one-input kernel of the table in force (tg_kern(), TAPEGRAD_ISA) over 16M elements, split by
// tg_parallel_for across state.range(0) threads. neg runs the same loop as sin (same chunks,
// prefetches and streaming stores) with next to no arithmetic: the memory side of sin's
// scaling, measured in the same interleaved repetitions.
template <tg_unary_fn tg_kernels::*Fn> void BM_map_16M_threads(benchmark::State &state)
{
    Buffer x(kLarge, -8, 8, 1), y(kLarge, 0, 1, 2);
    MapJob job{tg_kern()->*Fn, x.p, y.p};
    tg_set_num_threads(static_cast<int>(state.range(0)));
    for (auto _ : state) {
        tg_parallel_for(kLarge, tg_parallel_grain(), map_range, &job);
        benchmark::ClobberMemory();
    }
    tg_set_num_threads(0);
    set_counters(state, kLarge, 2);
    state.SetLabel(tg_kern()->name);
}

void BM_sin_16M_threads(benchmark::State &state)
{
    BM_map_16M_threads<&tg_kernels::sin>(state);
}

void BM_neg_16M_threads(benchmark::State &state)
{
    BM_map_16M_threads<&tg_kernels::neg>(state);
}

std::string size_name(int64_t n)
{
    return n == kSmall ? "64K" : "16M";
}

// k must outlive the benchmarks: the registered closures keep the pointer.
void register_family(const tg_kernels *k)
{
    const std::string f = k->name;
    const std::vector<Case> cases = kernel_cases(k);
    for (int64_t n : {kSmall, kLarge}) {
        const std::string s = "/" + size_name(n);
        for (const Case &c : cases)
            benchmark::RegisterBenchmark((f + "/" + c.name + s).c_str(), bench_case, c, n)
                ->UseRealTime();
        benchmark::RegisterBenchmark((f + "/lr_block" + s).c_str(), bench_lr_block, k, n)
            ->UseRealTime();
        benchmark::RegisterBenchmark((f + "/row_sums" + s).c_str(), bench_row_sums, k, n)
            ->UseRealTime();
        benchmark::RegisterBenchmark((f + "/col_sums" + s).c_str(), bench_col_sums, k, n)
            ->UseRealTime();
    }
    for (int64_t n : {16, 32, 64})
        for (int tb = 0; tb < 2; tb++)
            benchmark::RegisterBenchmark(
                (f + "/gemm_small/" + std::to_string(n) + (tb ? "/tb" : "/nn")).c_str(),
                bench_gemm_small, k, n, tb)
                ->UseRealTime();
}

} // namespace

// 1 and 2 threads, and every CPU when there are more (the library's default thread count: the
// CPUs the process may use, or TAPEGRAD_NUM_THREADS), the thread counts bench/compare/run.py
// asks for on any machine.
static void sin_thread_counts(benchmark::internal::Benchmark *b)
{
    b->Arg(1)->Arg(2);
    if (tg_get_num_threads() > 2)
        b->Arg(tg_get_num_threads());
}

BENCHMARK(BM_memcpy)->UseRealTime();
BENCHMARK(BM_sin_16M_threads)->Apply(sin_thread_counts)->UseRealTime();
BENCHMARK(BM_neg_16M_threads)->Apply(sin_thread_counts)->UseRealTime();

int main(int argc, char **argv)
{
    static const std::vector<tg_kernels> families = available_families();
    for (const tg_kernels &k : families)
        register_family(&k);
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
