// Kernel throughput per family: each kernel at 64K elements (in cache) and 16M (memory bound),
// next to a memcpy of 16M floats, the bandwidth ceiling for a streaming op. Bytes counted are
// the bytes the kernel reads plus writes; items are elements. gemm_small runs over a batch of
// n x n x n products (1 MB per operand) and reports FLOP/s (2 n^3 per product).
//
//   bench_kernels --benchmark_filter='avx512/(sigmoid|sin)/16M|memcpy' --benchmark_repetitions=5
//   bench_kernels --benchmark_filter='avx512/gemm_small' --benchmark_repetitions=5
//
// The families come from their init functions directly, so one binary measures all of them;
// BM_sin_16M_threads uses the table in force (tg_kern(), TAPEGRAD_ISA) across the thread pool.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

extern "C" {
#include "core/parallel.h"
#include "kernels.h"
}

namespace
{

constexpr int64_t kSmall = int64_t{1} << 16;
constexpr int64_t kLarge = int64_t{1} << 24;

// A 64-byte aligned float buffer, filled so no page fault lands inside a timed loop.
struct Buffer {
    explicit Buffer(int64_t n, float lo, float hi, uint32_t seed)
        : p(static_cast<float *>(
              std::aligned_alloc(64, (static_cast<size_t>(n) * 4 + 63) / 64 * 64)))
    {
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

bool cpu_runs(const std::string &name)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (name == "avx2")
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (name == "avx512")
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("fma");
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

// y = f(x) for the unary entries; lo/hi is the input range (log wants positive inputs).
void bench_unary(benchmark::State &state, tg_unary_fn f, int64_t n, float lo, float hi)
{
    Buffer x(n, lo, hi, 1), y(n, 0, 1, 2);
    for (auto _ : state) {
        f(x.p, y.p, n);
        benchmark::ClobberMemory();
    }
    set_counters(state, n, 2);
}

void bench_add_vv(benchmark::State &state, const tg_kernels *k, int64_t n)
{
    Buffer a(n, -8, 8, 1), b(n, -8, 8, 2), y(n, 0, 1, 3);
    for (auto _ : state) {
        k->add_vv(a.p, b.p, y.p, n);
        benchmark::ClobberMemory();
    }
    set_counters(state, n, 3);
}

void bench_mul_vs(benchmark::State &state, const tg_kernels *k, int64_t n)
{
    Buffer a(n, -8, 8, 1), y(n, 0, 1, 3);
    for (auto _ : state) {
        k->mul_vs(a.p, 1.5f, y.p, n);
        benchmark::ClobberMemory();
    }
    set_counters(state, n, 2);
}

void bench_sum(benchmark::State &state, const tg_kernels *k, int64_t n)
{
    Buffer x(n, -1, 1, 1);
    for (auto _ : state)
        benchmark::DoNotOptimize(k->sum(x.p, n));
    set_counters(state, n, 1);
}

// gx = f(x, gy) for the backward entries whose saved value is x.
void bench_bwd(benchmark::State &state, tg_unary_bwd_fn f, int64_t n)
{
    Buffer x(n, -8, 8, 1), gy(n, -1, 1, 2), gx(n, 0, 1, 3);
    for (auto _ : state) {
        f(x.p, gy.p, gx.p, n);
        benchmark::ClobberMemory();
    }
    set_counters(state, n, 3);
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

// Both outputs: reads logits and targets, writes loss and grad.
void bench_bce_logits(benchmark::State &state, const tg_kernels *k, int64_t n)
{
    Buffer z(n, -8, 8, 1), t(n, 0, 1, 2), loss(n, 0, 1, 3), grad(n, 0, 1, 4);
    for (int64_t i = 0; i < n; i++)
        t.p[i] = t.p[i] < 0.5f ? 0.0f : 1.0f;
    for (auto _ : state)
        benchmark::DoNotOptimize(k->bce_logits(z.p, t.p, loss.p, grad.p, n, 1.0f));
    set_counters(state, n, 4);
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

struct SinJob {
    const tg_kernels *k;
    const float *x;
    float *y;
};

void sin_range(void *ctx, int64_t begin, int64_t end)
{
    const SinJob *j = static_cast<const SinJob *>(ctx);
    j->k->sin(j->x + begin, j->y + begin, end - begin);
}

// sin over 16M elements split by tg_parallel_for across state.range(0) threads.
void BM_sin_16M_threads(benchmark::State &state)
{
    Buffer x(kLarge, -8, 8, 1), y(kLarge, 0, 1, 2);
    SinJob job{tg_kern(), x.p, y.p};
    tg_set_num_threads(static_cast<int>(state.range(0)));
    for (auto _ : state) {
        tg_parallel_for(kLarge, tg_parallel_grain(), sin_range, &job);
        benchmark::ClobberMemory();
    }
    tg_set_num_threads(0);
    set_counters(state, kLarge, 2);
    state.SetLabel(job.k->name);
}

std::string size_name(int64_t n)
{
    return n == kSmall ? "64K" : "16M";
}

// k must outlive the benchmarks: the registered closures keep the pointer.
void register_family(const tg_kernels *k)
{
    const std::string f = k->name;
    for (int64_t n : {kSmall, kLarge}) {
        const std::string s = "/" + size_name(n);
        struct Unary {
            const char *name;
            tg_unary_fn fn;
            float lo, hi;
        } unary[] = {{"sigmoid", k->sigmoid, -8, 8}, {"sin", k->sin, -8, 8},
                     {"cos", k->cos, -8, 8},         {"exp", k->exp, -8, 8},
                     {"log", k->log, 0.01f, 100},    {"tanh", k->tanh, -8, 8}};
        for (const Unary &u : unary)
            benchmark::RegisterBenchmark((f + "/" + u.name + s).c_str(), bench_unary, u.fn, n, u.lo,
                                         u.hi)
                ->UseRealTime();
        benchmark::RegisterBenchmark((f + "/add_vv" + s).c_str(), bench_add_vv, k, n)
            ->UseRealTime();
        benchmark::RegisterBenchmark((f + "/mul_vs" + s).c_str(), bench_mul_vs, k, n)
            ->UseRealTime();
        benchmark::RegisterBenchmark((f + "/sum" + s).c_str(), bench_sum, k, n)->UseRealTime();
        benchmark::RegisterBenchmark((f + "/sigmoid_bwd" + s).c_str(), bench_bwd, k->sigmoid_bwd, n)
            ->UseRealTime();
        benchmark::RegisterBenchmark((f + "/sin_bwd" + s).c_str(), bench_bwd, k->sin_bwd, n)
            ->UseRealTime();
        benchmark::RegisterBenchmark((f + "/bce_logits" + s).c_str(), bench_bce_logits, k, n)
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

BENCHMARK(BM_memcpy)->UseRealTime();
BENCHMARK(BM_sin_16M_threads)->Arg(1)->Arg(2)->UseRealTime();

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
