// CSV parsing throughput: 1M rows x 32 float columns plus a 0/1 label, generated once into a
// temporary file (or read from TAPEGRAD_BENCH_CSV), and the same table with a missing value in
// every 100th row, read with the column means filled in. Bytes per second counts the file's
// bytes.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <string>

extern "C" {
#include <tapegrad.h>
}

struct csv_file {
    std::string path;
    int64_t bytes;
};

// Values like the ones real tables hold: 6 significant digits, mixed signs and exponents. With
// gaps, the first field of every 100th row is left empty.
static bool write_csv(const std::string &path, int64_t rows, int cols, bool gaps)
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
            if (gaps && c == 0 && r % 100 == 99)
                std::fputc(',', f);
            else
                std::fprintf(f, c % 3 == 0 ? "%.6g," : "%.6f,", v);
        }
        std::fprintf(f, "%d\n", (int)(s & 1));
    }
    return std::fclose(f) == 0;
}

// The file to read: generated on first use, or TAPEGRAD_BENCH_CSV for the one without gaps.
static bool ensure_file(csv_file &file, bool gaps)
{
    if (!file.path.empty())
        return true;
    const char *env = gaps ? nullptr : std::getenv("TAPEGRAD_BENCH_CSV");
    file.path = env    ? env
                : gaps ? "/tmp/tapegrad_bench_1Mx32_gaps.csv"
                       : "/tmp/tapegrad_bench_1Mx32.csv";
    FILE *f = std::fopen(file.path.c_str(), "r");
    if (!f && !write_csv(file.path, 1000000, 32, gaps))
        return false;
    if (!f)
        f = std::fopen(file.path.c_str(), "r");
    if (!f)
        return false;
    std::fseek(f, 0, SEEK_END);
    file.bytes = std::ftell(f);
    std::fclose(f);
    return true;
}

static void read_csv(benchmark::State &state, bool gaps)
{
    static csv_file files[2];
    csv_file &file = files[gaps];
    if (!ensure_file(file, gaps)) {
        state.SkipWithError("cannot write the CSV file");
        return;
    }
    tg_csv_options opt;
    tg_csv_options_init(&opt);
    opt.label = "label";
    opt.threads = (int)state.range(0);
    opt.missing = gaps ? TG_MISSING_MEAN : TG_MISSING_ERROR;
    for (auto _ : state) {
        tg_csv_data d;
        if (tg_csv_read(file.path.c_str(), &opt, &d) != TG_OK) {
            state.SkipWithError(tg_last_error());
            return;
        }
        benchmark::DoNotOptimize(tg_data(d.X));
        tg_csv_data_free(&d);
    }
    state.SetBytesProcessed(state.iterations() * file.bytes);
}

static void BM_csv_read(benchmark::State &state)
{
    read_csv(state, false);
}
BENCHMARK(BM_csv_read)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

// Missing values: rows the stream hands to the general row parser.
static void BM_csv_read_missing(benchmark::State &state)
{
    read_csv(state, true);
}
BENCHMARK(BM_csv_read_missing)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
