// CSV parsing throughput: 1M rows x 32 float columns plus a 0/1 label, generated once into a
// temporary file (or read from TAPEGRAD_BENCH_CSV); the same table with a missing value in
// every 100th row, read with the column means filled in; with the labels written as "yes" and
// "no"; and with the fields set off by spaces. Bytes per second counts the file's bytes.
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

enum table { kPlain, kGaps, kStrings, kSpaces };

// Values like the ones real tables hold: 6 significant digits, mixed signs and exponents. kGaps
// leaves the first field of every 100th row empty; kStrings writes the labels as yes and no;
// kSpaces puts one space between fields (the delimiter ' ': runs of blanks).
static bool write_csv(const std::string &path, int64_t rows, int cols, table kind)
{
    FILE *f = std::fopen(path.c_str(), "w");
    if (!f)
        return false;
    const char sep = kind == kSpaces ? ' ' : ',';
    for (int c = 0; c < cols; c++)
        std::fprintf(f, "f%d%c", c, sep);
    std::fprintf(f, "label\n");
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    for (int64_t r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            double v = ((double)(s >> 11) * 0x1p-53 - 0.5) * (c % 4 == 0 ? 2000.0 : 2.0);
            if (kind == kGaps && c == 0 && r % 100 == 99)
                std::fputc(sep, f);
            else
                std::fprintf(f, c % 3 == 0 ? "%.6g%c" : "%.6f%c", v, sep);
        }
        if (kind == kStrings)
            std::fprintf(f, "%s\n", s & 1 ? "yes" : "no");
        else
            std::fprintf(f, "%d\n", (int)(s & 1));
    }
    return std::fclose(f) == 0;
}

// The file to read: generated on first use, or TAPEGRAD_BENCH_CSV for the plain one.
static bool ensure_file(csv_file &file, table kind)
{
    static const char *const names[] = {
        "/tmp/tapegrad_bench_1Mx32.csv", "/tmp/tapegrad_bench_1Mx32_gaps.csv",
        "/tmp/tapegrad_bench_1Mx32_yes_no.csv", "/tmp/tapegrad_bench_1Mx32_spaces.csv"};
    if (!file.path.empty())
        return true;
    const char *env = kind == kPlain ? std::getenv("TAPEGRAD_BENCH_CSV") : nullptr;
    file.path = env ? env : names[kind];
    FILE *f = std::fopen(file.path.c_str(), "r");
    if (!f && !write_csv(file.path, 1000000, 32, kind))
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

static void read_csv(benchmark::State &state, table kind)
{
    static csv_file files[4];
    csv_file &file = files[kind];
    if (!ensure_file(file, kind)) {
        state.SkipWithError("cannot write the CSV file");
        return;
    }
    tg_csv_options opt;
    tg_csv_options_init(&opt);
    opt.label = "label";
    opt.threads = (int)state.range(0);
    opt.missing = kind == kGaps ? TG_MISSING_MEAN : TG_MISSING_ERROR;
    opt.positive = kind == kStrings ? "yes" : nullptr;
    opt.delimiter = kind == kSpaces ? ' ' : '\0';
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
    read_csv(state, kPlain);
}
BENCHMARK(BM_csv_read)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

// Missing values: rows the stream hands to the general row parser.
static void BM_csv_read_missing(benchmark::State &state)
{
    read_csv(state, kGaps);
}
BENCHMARK(BM_csv_read_missing)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

// Labels as two strings (positive = "yes").
static void BM_csv_read_string_labels(benchmark::State &state)
{
    read_csv(state, kStrings);
}
BENCHMARK(BM_csv_read_string_labels)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

// Fields set off by spaces.
static void BM_csv_read_spaces(benchmark::State &state)
{
    read_csv(state, kSpaces);
}
BENCHMARK(BM_csv_read_spaces)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
