// libtorch (C++) mirrors of BM_seed_graph and BM_seed_logistic_step, for the autograd-overhead
// rows: the same graphs as peers/torch_autograd.py without the Python interpreter in between.
//
//   seed_libtorch [--smoke] [--reps N]
//
// Prints one JSON object: for each workload the median and best seconds per iteration and the
// values it computed (torch_autograd.py checks them against tapegrad). The intra-op thread
// count is 1 (scalar graphs never use more). Built by run.py on demand, or by CMake with
// -DTAPEGRAD_COMPARE_LIBTORCH=ON.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace {

double seconds_of(const std::function<void()> &fn, long number)
{
    auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < number; i++)
        fn();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// As Python's timeit: a loop count that runs >= 0.2 s, then `reps` loops; median per call.
void time_it(const std::function<void()> &fn, bool smoke, int reps, double *median, double *best)
{
    long number = 1;
    if (!smoke) {
        fn();
        while (seconds_of(fn, number) < 0.2)
            number *= 2;
    }
    std::vector<double> t;
    for (int r = 0; r < (smoke ? 1 : reps); r++)
        t.push_back(seconds_of(fn, number) / (double)number);
    std::sort(t.begin(), t.end());
    *median = t[t.size() / 2];
    *best = t[0];
}

} // namespace

int main(int argc, char **argv)
{
    bool smoke = false;
    int reps = 5;
    for (int i = 1; i < argc; i++) {
        if (std::strcmp(argv[i], "--smoke") == 0)
            smoke = true;
        else if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = std::max(1, std::atoi(argv[++i]));
        else {
            std::fprintf(stderr, "usage: seed_libtorch [--smoke] [--reps N]\n");
            return 2;
        }
    }
    torch::set_num_threads(1);

    // The timed bodies read x.grad (w.grad) as a float, as the benchmarks do; the other outputs
    // are kept as tensors and read after the timing.
    float g_val = 0;
    torch::Tensor z_keep;
    auto seed_graph = [&] {
        auto x = torch::tensor(3.0f, torch::requires_grad());
        auto y = x.pow(2);
        auto z = torch::sin(y);
        z.backward();
        g_val = x.grad().item<float>();
        z_keep = z;
    };
    double sg_med, sg_best;
    time_it(seed_graph, smoke, reps, &sg_med, &sg_best);

    auto xs = torch::tensor(6.7f), ys = torch::tensor(0.0f);
    float gw_val = 0;
    torch::Tensor loss_keep, gb_keep;
    auto logistic = [&] {
        auto w = torch::tensor(1.0f, torch::requires_grad());
        auto b = torch::tensor(0.0f, torch::requires_grad());
        auto p = torch::sigmoid(w * xs + b);
        auto loss = torch::binary_cross_entropy(p, ys);
        loss.backward();
        gw_val = w.grad().item<float>();
        gb_keep = b.grad();
        loss_keep = loss;
    };
    double ls_med, ls_best;
    time_it(logistic, smoke, reps, &ls_med, &ls_best);

    std::printf("{\"torch\": \"%s\", \"results\": [\n", TORCH_VERSION);
    std::printf(" {\"id\": \"seed_graph\", \"seconds\": %.9g, \"best\": %.9g, \"values\": [%.9g, "
                "%.9g]},\n", sg_med, sg_best, z_keep.item<float>(), g_val);
    std::printf(" {\"id\": \"seed_logistic_step\", \"seconds\": %.9g, \"best\": %.9g, \"values\": "
                "[%.9g, %.9g, %.9g]}\n]}\n", ls_med, ls_best, loss_keep.item<float>(), gw_val,
                gb_keep.item<float>());
    return 0;
}
