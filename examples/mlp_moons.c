/* A 2-16-16-1 MLP (tanh, relu) trained with Adam on two interleaving half-moons.
 *
 *   mlp_moons [EPOCHS] [MAX_FINAL_LOSS]
 *
 * Prints the loss as it trains and the final accuracy. With MAX_FINAL_LOSS it exits non-zero
 * when the final loss is above it (the test suite runs a short version that way). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <tapegrad.h>

#define N_POINTS 512

/* Two moons with Gaussian noise, from fixed seeds: the same points on every machine. */
static void make_moons(tg_tensor **X, tg_tensor **y)
{
    int64_t n = N_POINTS, shape2[2] = {N_POINTS, 2};
    tg_tensor *u = tg_rand(1, &n, 7), *noise = tg_randn(2, shape2, 8);
    float *t = tg_data(u), *e = tg_data(noise);
    static float xs[N_POINTS * 2], ys[N_POINTS];
    for (int i = 0; i < N_POINTS; i++) {
        float a = 3.14159265f * t[i];
        bool upper = i % 2 == 0;
        xs[2 * i] = (upper ? cosf(a) : 1.0f - cosf(a)) + 0.1f * e[2 * i];
        xs[2 * i + 1] = (upper ? sinf(a) : 0.5f - sinf(a)) + 0.1f * e[2 * i + 1];
        ys[i] = upper ? 0.0f : 1.0f;
    }
    *X = tg_from_data(xs, 2, shape2);
    *y = tg_from_data(ys, 2, (int64_t[]){N_POINTS, 1});
    tg_release(u), tg_release(noise);
}

/* PyTorch's nn.Linear initialization: W and b uniform in +-1/sqrt(fan_in). */
static tg_tensor *uniform_param(int ndim, const int64_t *shape, float bound, uint64_t seed)
{
    tg_tensor *u = tg_rand(ndim, shape, seed);
    tg_tensor *scaled = tg_mul_scalar(u, 2.0f * bound);
    tg_tensor *p = tg_add_scalar(scaled, -bound);
    tg_release(u), tg_release(scaled);
    return tg_requires_grad_(p, true);
}

typedef struct {
    tg_tensor *W1, *b1, *W2, *b2, *W3, *b3;
} mlp;

static void mlp_init(mlp *m)
{
    float s2 = 1.0f / sqrtf(2.0f), s16 = 0.25f;
    m->W1 = uniform_param(2, (int64_t[]){16, 2}, s2, 1);
    m->b1 = uniform_param(1, (int64_t[]){16}, s2, 2);
    m->W2 = uniform_param(2, (int64_t[]){16, 16}, s16, 3);
    m->b2 = uniform_param(1, (int64_t[]){16}, s16, 4);
    m->W3 = uniform_param(2, (int64_t[]){1, 16}, s16, 5);
    m->b3 = uniform_param(1, (int64_t[]){1}, s16, 6);
}

static tg_tensor *mlp_forward(const mlp *m, tg_tensor *X)
{
    tg_tensor *h1 = tg_tanh(tg_linear(X, m->W1, m->b1));
    tg_tensor *h2 = tg_relu(tg_linear(h1, m->W2, m->b2));
    return tg_linear(h2, m->W3, m->b3); /* logits */
}

static float accuracy(tg_tensor *logits, tg_tensor *y)
{
    const float *z = tg_data(logits), *t = tg_data(y);
    int correct = 0;
    for (int i = 0; i < N_POINTS; i++)
        correct += (z[i] > 0.0f) == (t[i] > 0.5f);
    return (float)correct / N_POINTS;
}

int main(int argc, char **argv)
{
    int epochs = argc > 1 ? atoi(argv[1]) : 1000;
    float max_loss = argc > 2 ? strtof(argv[2], NULL) : INFINITY;
    tg_tensor *X, *y;
    make_moons(&X, &y);
    mlp m;
    mlp_init(&m);
    tg_tensor *params[6] = {m.W1, m.b1, m.W2, m.b2, m.W3, m.b3};
    tg_adam_options opts;
    tg_adam_options_init(&opts);
    opts.lr = 0.01f;
    tg_optimizer *opt = tg_adam_new(params, 6, &opts);
    if (!opt) {
        fprintf(stderr, "mlp_moons: %s\n", tg_last_error());
        return 1;
    }
    float loss_value = NAN, acc = 0.0f;
    for (int epoch = 1; epoch <= epochs; epoch++) {
        tg_scope_begin();
        tg_tensor *logits = mlp_forward(&m, X);
        tg_tensor *loss = tg_bce_with_logits(logits, y, NULL, TG_REDUCE_MEAN);
        tg_optimizer_zero_grad(opt, true);
        if (tg_backward(loss, NULL, false) != TG_OK || tg_optimizer_step(opt) != TG_OK) {
            fprintf(stderr, "mlp_moons: %s\n", tg_last_error());
            return 1;
        }
        loss_value = tg_item(loss);
        acc = accuracy(logits, y);
        if (epoch % 100 == 0 || epoch == epochs)
            printf("epoch %4d  loss %.4f  accuracy %.1f%%\n", epoch, loss_value, 100.0f * acc);
        tg_scope_end();
    }
    tg_optimizer_free(opt);
    for (int i = 0; i < 6; i++)
        tg_release(params[i]);
    tg_release(X), tg_release(y);
    if (!(loss_value <= max_loss)) {
        fprintf(stderr, "mlp_moons: final loss %.4f is above %.4f\n", loss_value, max_loss);
        return 1;
    }
    return 0;
}
