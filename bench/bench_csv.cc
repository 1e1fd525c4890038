// CSV parsing throughput: 1M rows x 32 float columns plus a 0/1 label, generated once into a
// temporary file (or read from TAPEGRAD_BENCH_CSV). Bytes per second counts the file's bytes.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <string>

extern "C" {
#include <tapegrad.h>
}

static std::string csv_path;
static int64_t csv_bytes;

// Values like the ones real tables hold: 6 significant digits, mixed signs and exponents.
static bool write_csv(const std::string &path, int64_t rows, int cols)
{
    FILE *f = std::fopen(path.c_str(), "w");
    if (!f)
        return false;
    for (int c = 0; c < cols; c++)
        std::fprintf(f, "f%d,", c);
    std::fprintf(f, "label\n");
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    for (int64_t r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            double v = ((double)(s >> 11) * 0x1p-53 - 0.5) * (c % 4 == 0 ? 2000.0 : 2.0);
            std::fprintf(f, c % 3 == 0 ? "%.6g," : "%.6f,", v);
        }
        std::fprintf(f, "%d\n", (int)(s & 1));
    }
    return std::fclose(f) == 0;
}

static bool ensure_file()
{
    if (!csv_path.empty())
        return true;
    const char *env = std::getenv("TAPEGRAD_BENCH_CSV");
    csv_path = env ? env : "/tmp/tapegrad_bench_1Mx32.csv";
    FILE *f = std::fopen(csv_path.c_str(), "r");
    if (!f && !write_csv(csv_path, 1000000, 32))
        return false;
    if (!f)
        f = std::fopen(csv_path.c_str(), "r");
    if (!f)
        return false;
    std::fseek(f, 0, SEEK_END);
    csv_bytes = std::ftell(f);
    std::fclose(f);
    return true;
}

static void BM_csv_read(benchmark::State &state)
{
    if (!ensure_file()) {
        state.SkipWithError("cannot write the CSV file");
        return;
    }
    tg_csv_options opt;
    tg_csv_options_init(&opt);
    opt.label = "label";
    opt.threads = (int)state.range(0);
    for (auto _ : state) {
        tg_csv_data d;
        if (tg_csv_read(csv_path.c_str(), &opt, &d) != TG_OK) {
            state.SkipWithError(tg_last_error());
            return;
        }
        benchmark::DoNotOptimize(tg_data(d.X));
        tg_csv_data_free(&d);
    }
    state.SetBytesProcessed(state.iterations() * csv_bytes);
}
BENCHMARK(BM_csv_read)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
