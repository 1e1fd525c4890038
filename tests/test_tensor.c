/* Tensors: creation, random tensors, views and storage sharing, copies, inspection errors,
 * scopes, 0-d and empty tensors. */
#include <setjmp.h> /* cmocka needs these before its header */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/tensor.h" /* storage identity and reference counts */
#include "gradcheck.h"
#include "tapegrad.h"
#include "parallel.h"

static void assert_shape(const tg_tensor *t, int ndim, const int64_t *shape)
{
    assert_non_null(t);
    assert_int_equal(tg_ndim(t), ndim);
    for (int i = 0; i < ndim; i++)
        assert_int_equal(tg_shape(t)[i], shape[i]);
}

/* Exact comparison: these values are all representable and computed without rounding. */
static void assert_exact(const tg_tensor *t, const float *want, int64_t n)
{
    assert_int_equal(tg_numel(t), n);
    float *v = tg_test_values(t);
    assert_non_null(v);
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&v[i], &want[i], sizeof(float)) != 0)
            fail_msg("element %lld: got %a, want %a", (long long)i, (double)v[i], (double)want[i]);
    free(v);
}

/* ---- creation ---- */

static void test_scalar_and_from_data(void **state)
{
    (void)state;
    tg_tensor *s = tg_scalar(2.5f);
    assert_int_equal(tg_ndim(s), 0);
    assert_int_equal(tg_numel(s), 1);
    assert_true(tg_item(s) == 2.5f);
    assert_int_equal(tg_last_status(), TG_OK);
    assert_true(tg_is_contiguous(s));
    assert_false(tg_requires_grad(s));
    assert_true(tg_is_leaf(s));

    float src[6] = {1, 2, 3, 4, 5, 6};
    tg_tensor *t = tg_from_data(src, 2, (int64_t[]){2, 3});
    assert_shape(t, 2, (int64_t[]){2, 3});
    assert_int_equal(tg_strides(t)[0], 3);
    assert_int_equal(tg_strides(t)[1], 1);
    src[0] = 100; /* from_data copies */
    assert_exact(t, (float[]){1, 2, 3, 4, 5, 6}, 6);
    tg_tensor *z = tg_from_data(src, 0, NULL);
    assert_true(tg_item(z) == 100.0f);
    tg_release(z), tg_release(s), tg_release(t);
}

static void test_zeros_ones_full(void **state)
{
    (void)state;
    const int64_t sh[3] = {2, 1, 3};
    tg_tensor *z = tg_zeros(3, sh), *o = tg_ones(3, sh), *f = tg_full(3, sh, -1.25f);
    assert_shape(z, 3, sh);
    assert_exact(z, (float[]){0, 0, 0, 0, 0, 0}, 6);
    assert_exact(o, (float[]){1, 1, 1, 1, 1, 1}, 6);
    assert_exact(f, (float[]){-1.25f, -1.25f, -1.25f, -1.25f, -1.25f, -1.25f}, 6);
    tg_tensor *big = tg_full(1, (int64_t[]){1000}, 7.0f);
    float *v = tg_data(big);
    for (int i = 0; i < 1000; i++)
        assert_true(v[i] == 7.0f);
    tg_tensor *e = tg_empty(2, (int64_t[]){4, 5});
    assert_shape(e, 2, (int64_t[]){4, 5});
    tg_release(z), tg_release(o), tg_release(f), tg_release(big), tg_release(e);
}

static void check_arange(float start, float end, float step, const uint32_t *bits, int64_t n)
{
    tg_tensor *t = tg_arange(start, end, step);
    assert_non_null(t);
    assert_int_equal(tg_ndim(t), 1);
    float want[16] = {0};
    for (int64_t i = 0; i < n; i++)
        memcpy(&want[i], &bits[i], sizeof(float));
    assert_exact(t, want, n);
    tg_release(t);
}

static void test_arange_matches_torch(void **state)
{
    (void)state;
    /* Bit patterns of torch.arange(start, end, step, dtype=torch.float32) in PyTorch 1.13, with
     * start/end/step passed as the same float32 values (np.float32(0.1) etc.). */
    check_arange(0, 5, 1, (uint32_t[]){0x0, 0x3f800000, 0x40000000, 0x40400000, 0x40800000}, 5);
    check_arange(0, 1, 0.1f,
                 (uint32_t[]){0x0, 0x3dcccccd, 0x3e4ccccd, 0x3e99999a, 0x3ecccccd, 0x3f000000,
                              0x3f19999a, 0x3f333333, 0x3f4ccccd, 0x3f666667},
                 10);
    check_arange(1, 2.5f, 0.5f, (uint32_t[]){0x3f800000, 0x3fc00000, 0x40000000}, 3);
    check_arange(10, 0, -3, (uint32_t[]){0x41200000, 0x40e00000, 0x40800000, 0x3f800000}, 4);
    /* float32(0.3) / float32(0.1) is just above 3, so torch gives 4 elements */
    check_arange(0, 0.3f, 0.1f, (uint32_t[]){0x0, 0x3dcccccd, 0x3e4ccccd, 0x3e99999a}, 4);
    check_arange(-1, 1, 0.25f,
                 (uint32_t[]){0xbf800000, 0xbf400000, 0xbf000000, 0xbe800000, 0x0, 0x3e800000,
                              0x3f000000, 0x3f400000},
                 8);
    check_arange(0.5f, 3.7f, 0.7f,
                 (uint32_t[]){0x3f000000, 0x3f99999a, 0x3ff33333, 0x40266666, 0x40533333}, 5);
    check_arange(2, 2, 1, NULL, 0);
    check_arange(1, 1.0000001f, 0.5f, (uint32_t[]){0x3f800000}, 1);
}

static void test_rand_randn_seeded(void **state)
{
    (void)state;
    const int64_t n = 100000;
    tg_tensor *a = tg_rand(1, &n, 42), *b = tg_rand(1, &n, 42), *c = tg_rand(1, &n, 43);
    const float *pa = tg_data(a), *pb = tg_data(b), *pc = tg_data(c);
    assert_memory_equal(pa, pb, (size_t)n * sizeof(float));
    int64_t same = 0;
    double mean = 0;
    for (int64_t i = 0; i < n; i++) {
        assert_true(pa[i] >= 0.0f && pa[i] < 1.0f);
        same += pa[i] == pc[i];
        mean += pa[i];
    }
    assert_true(same < 100); /* different seeds: different streams */
    mean /= (double)n;
    assert_true(fabs(mean - 0.5) < 0.01); /* sd of the mean is 0.29 / sqrt(1e5) = 0.0009 */

    tg_tensor *g = tg_randn(1, &n, 7), *h = tg_randn(1, &n, 7), *k = tg_randn(1, &n, 8);
    assert_memory_equal(tg_data(g), tg_data(h), (size_t)n * sizeof(float));
    const float *pg = tg_data(g), *pk = tg_data(k);
    double s1 = 0, s2 = 0;
    same = 0;
    for (int64_t i = 0; i < n; i++) {
        assert_true(isfinite(pg[i]));
        s1 += pg[i];
        s2 += (double)pg[i] * pg[i];
        same += pg[i] == pk[i];
    }
    assert_true(same < 100);
    double m = s1 / (double)n, sd = sqrt(s2 / (double)n - m * m);
    assert_true(fabs(m) < 0.02);        /* sd of the mean: 0.003 */
    assert_true(fabs(sd - 1.0) < 0.02); /* sd of the sd: 0.0022 */
    /* odd sizes and multi-d shapes use the same stream: a prefix is stable */
    tg_tensor *small = tg_randn(2, (int64_t[]){3, 3}, 7);
    assert_memory_equal(tg_data(small), pg, 9 * sizeof(float));
    /* The same bits on every ISA and compiler: these were produced on x86-64 and the suite
     * also runs on aarch64 (qemu in CI), where they must come out identical. */
    static const uint32_t rand42[6] = {0x3f189b3fu, 0x3e2436d0u, 0x3e2a642cu,
                                       0x3d44b6b0u, 0x3f7b16a0u, 0x3e70c3f0u};
    static const uint32_t randn7[6] = {0xbebb342bu, 0x3f89b679u, 0x3e849ef4u,
                                       0xbe6f2397u, 0xbf01d164u, 0x3f400a4fu};
    assert_memory_equal(pa, rand42, sizeof rand42);
    assert_memory_equal(pg, randn7, sizeof randn7);
    tg_release(a), tg_release(b), tg_release(c), tg_release(g), tg_release(h), tg_release(k);
    tg_release(small);
}

/* ---- views and storage ---- */

static void test_views_share_storage(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *x = tg_arange(0, 12, 1);
    tg_tensor *m = tg_reshape(x, 2, (int64_t[]){3, 4});
    tg_tensor *t = tg_transpose(m, 0, 1);
    tg_tensor *row = tg_narrow(m, 0, 1, 1);
    tg_tensor *col = tg_narrow(m, 1, 2, 1);
    tg_tensor *ex = tg_expand(tg_narrow(m, 0, 0, 1), 2, (int64_t[]){5, 4});
    tg_tensor *p = tg_permute(tg_reshape(x, 3, (int64_t[]){2, 3, 2}), (int[]){2, 0, 1});
    tg_tensor *views[] = {m, t, row, col, ex, p};
    for (size_t i = 0; i < sizeof views / sizeof views[0]; i++)
        assert_ptr_equal(views[i]->storage, x->storage);
    assert_true(tg_is_contiguous(m));
    assert_false(tg_is_contiguous(t));
    assert_true(tg_is_contiguous(row)); /* a full row: dense, with an offset */
    assert_false(tg_is_contiguous(col));
    assert_false(tg_is_contiguous(ex));
    assert_false(tg_is_contiguous(p));
    assert_int_equal(tg_strides(t)[0], 1);
    assert_int_equal(tg_strides(t)[1], 4);
    assert_int_equal(tg_strides(ex)[0], 0);
    /* writes through a view are visible in the base */
    tg_data(row)[2] = 100.0f; /* m[1][2] = x[6] */
    assert_true(tg_data(x)[6] == 100.0f);
    assert_non_null(tg_fill_(col, -1.0f)); /* column 2: x[2], x[6], x[10] */
    assert_exact(x, (float[]){0, 1, -1, 3, 4, 5, -1, 7, 8, 9, -1, 11}, 12);
    assert_non_null(tg_fill_(tg_narrow(t, 0, 0, 1), 50.0f)); /* t[0] = m[:, 0] */
    assert_exact(x, (float[]){50, 1, -1, 3, 50, 5, -1, 7, 50, 9, -1, 11}, 12);
    /* the views see the change: t[1] is m[:, 1] */
    assert_exact(tg_narrow(t, 0, 1, 1), (float[]){1, 5, 9}, 3);
    /* permute [2,3,2] -> dims (2,0,1): p[k][i][j] = x[6i + 2j + k] */
    assert_exact(p, (float[]){50, -1, 50, -1, 50, -1, 1, 3, 5, 7, 9, 11}, 12);
    tg_scope_end();
}

static void test_view_outlives_base(void **state)
{
    (void)state;
    tg_tensor *x = tg_arange(0, 6, 1);
    tg_tensor *v = tg_narrow(x, 0, 2, 3);
    tg_release(x); /* storage stays while a view uses it */
    assert_exact(v, (float[]){2, 3, 4}, 3);
    tg_release(v);
}

static void test_reshape_copies_only_when_needed(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *x = tg_arange(0, 12, 1);
    tg_tensor *m = tg_reshape(x, 2, (int64_t[]){3, 4});
    tg_tensor *t = tg_transpose(m, 0, 1); /* [4, 3], strides (1, 4) */
    /* no view of t as [12] exists: PyTorch copies, and so must we */
    tg_tensor *flat = tg_reshape(t, 1, (int64_t[]){12});
    assert_ptr_not_equal(flat->storage, x->storage);
    assert_true(tg_is_contiguous(flat));
    assert_exact(flat, (float[]){0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}, 12);
    tg_data(flat)[0] = 99.0f;
    assert_true(tg_data(x)[0] == 0.0f);
    /* splitting or adding unit dims of the transposed tensor is a view */
    tg_tensor *v = tg_reshape(t, 3, (int64_t[]){2, 2, 3});
    assert_ptr_equal(v->storage, x->storage);
    assert_int_equal(tg_strides(v)[0], 2);
    assert_int_equal(tg_strides(v)[1], 1);
    assert_int_equal(tg_strides(v)[2], 4);
    tg_tensor *v1 = tg_reshape(t, 3, (int64_t[]){4, 1, 3});
    assert_ptr_equal(v1->storage, x->storage);
    assert_exact(v1, (float[]){0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}, 12);
    /* -1 is inferred */
    tg_tensor *inf = tg_reshape(x, 3, (int64_t[]){2, -1, 3});
    assert_shape(inf, 3, (int64_t[]){2, 2, 3});
    assert_ptr_equal(inf->storage, x->storage);
    /* narrow along the last dim: rows are no longer adjacent */
    tg_tensor *nr = tg_narrow(m, 1, 0, 2);
    tg_tensor *nrf = tg_reshape(nr, 1, (int64_t[]){6});
    assert_ptr_not_equal(nrf->storage, x->storage);
    assert_exact(nrf, (float[]){0, 1, 4, 5, 8, 9}, 6);
    tg_tensor *nc = tg_reshape(tg_narrow(m, 0, 1, 2), 1, (int64_t[]){8});
    assert_ptr_equal(nc->storage, x->storage);
    assert_exact(nc, (float[]){4, 5, 6, 7, 8, 9, 10, 11}, 8);
    tg_scope_end();
}

/* A random shape with n elements: a random factorisation, with unit dims mixed in. */
static int random_shape(uint64_t *rng, int64_t n, int64_t *shape)
{
    int nd = 0;
    while (n > 1 && nd < 6) {
        int64_t f = 2 + (int64_t)(tg_test_rng_next(rng) % 5);
        if (n % f == 0) {
            shape[nd++] = f;
            n /= f;
        } else if (tg_test_rng_next(rng) % 4 == 0) {
            shape[nd++] = 1;
        }
    }
    if (n > 1 || nd == 0 || tg_test_rng_next(rng) % 2)
        shape[nd++] = n;               /* the rest (possibly 1) */
    for (int i = nd - 1; i > 0; i--) { /* shuffle */
        int j = (int)(tg_test_rng_next(rng) % (uint64_t)(i + 1));
        int64_t t = shape[i];
        shape[i] = shape[j], shape[j] = t;
    }
    return nd;
}

static void test_reshape_random_layouts(void **state)
{
    (void)state;
    /* reshape must keep row-major order whether it returns a view or a copy, for any strides */
    uint64_t rng = 7;
    int views = 0;
    for (int trial = 0; trial < 300; trial++) {
        tg_scope_begin();
        tg_tensor *x = tg_reshape(tg_arange(0, 120, 1), 4, (int64_t[]){2, 3, 4, 5});
        int perm[4] = {0, 1, 2, 3};
        for (int i = 3; i > 0; i--) {
            int j = (int)(tg_test_rng_next(&rng) % (uint64_t)(i + 1));
            int t = perm[i];
            perm[i] = perm[j], perm[j] = t;
        }
        tg_tensor *src = tg_permute(x, perm);
        if (tg_test_rng_next(&rng) % 2) {
            int d = (int)(tg_test_rng_next(&rng) % 4);
            int64_t size = tg_shape(src)[d];
            int64_t len = 1 + (int64_t)(tg_test_rng_next(&rng) % (uint64_t)size);
            src = tg_narrow(src, d, (size - len) / 2, len);
        }
        int64_t shape[8];
        int nd = random_shape(&rng, tg_numel(src), shape);
        tg_tensor *r = tg_reshape(src, nd, shape);
        assert_non_null(r);
        float *want = tg_test_values(src), *got = tg_test_values(r);
        if (memcmp(want, got, (size_t)tg_numel(src) * sizeof(float)) != 0)
            fail_msg("trial %d: reshape of a permuted/narrowed tensor reordered its values", trial);
        if (r->storage == x->storage) { /* a view: writes must land on the same elements */
            views++;
            assert_non_null(tg_fill_(r, -1.0f));
            float *after = tg_test_values(src);
            for (int64_t i = 0; i < tg_numel(src); i++)
                assert_true(after[i] == -1.0f);
            free(after);
        }
        free(want), free(got);
        tg_scope_end();
    }
    assert_true(views > 30 && views < 270); /* both the view and the copy path were taken */
}

static void test_contiguous(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *m = tg_reshape(tg_arange(0, 6, 1), 2, (int64_t[]){2, 3});
    tg_tensor *same = tg_contiguous(m);
    assert_ptr_equal(same, m);
    tg_tensor *t = tg_transpose(m, 0, 1);
    tg_tensor *c = tg_contiguous(t);
    assert_true(tg_is_contiguous(c));
    assert_ptr_not_equal(c->storage, m->storage);
    assert_shape(c, 2, (int64_t[]){3, 2});
    assert_int_equal(tg_strides(c)[0], 2);
    assert_exact(c, (float[]){0, 3, 1, 4, 2, 5}, 6);
    tg_tensor *cl = tg_clone(m); /* clone always copies */
    assert_ptr_not_equal(cl->storage, m->storage);
    assert_exact(cl, (float[]){0, 1, 2, 3, 4, 5}, 6);
    /* a [1, n] tensor transposed is still contiguous, as in PyTorch */
    tg_tensor *r = tg_transpose(tg_narrow(m, 0, 0, 1), 0, 1);
    assert_true(tg_is_contiguous(r));
    /* so is any view without elements: torch.zeros(2, 1, 0, 0).transpose(3, 1) has strides
     * (1, 1, 1, 1) and is_contiguous(); .contiguous() returns it, grad_fn and all */
    tg_tensor *e = tg_requires_grad_(tg_zeros(4, (int64_t[]){2, 1, 0, 0}), true);
    tg_tensor *et = tg_transpose(e, 3, 1);
    assert_true(tg_is_contiguous(et));
    assert_true(tg_is_contiguous(tg_transpose(tg_zeros(2, (int64_t[]){0, 3}), 0, 1)));
    assert_true(tg_is_contiguous(tg_narrow(t, 1, 1, 0)));
    tg_tensor *ec = tg_contiguous(et);
    assert_ptr_equal(ec, et);
    assert_string_equal(tg_grad_fn_name(ec), "TransposeBackward0");
    char *s = tg_repr(ec);
    assert_string_equal(s, "tensor([], size=(2, 0, 0, 1), grad_fn=<TransposeBackward0>)");
    free(s);
    tg_scope_end();
}

/* Copies of views whose dense dim is not the last go by tiles; every element must land where
 * the plain walk puts it: tile edges off the tile grid, a leading dim larger than the rows,
 * batch dims in any order, the dense dim first, and one matrix large enough to be split across
 * threads. The
 * storage holds its own indices, so each value names the element it came from. */
static void test_transposed_copies(void **state)
{
    (void)state;
    const struct {
        int64_t shape[3];
        int perm[3];
        int64_t narrow_last; /* 0 = none */
    } cases[] = {
        {{3, 70, 37}, {0, 2, 1}, 0},    /* [3, 37, 70], ld 37 */
        {{3, 70, 40}, {0, 2, 1}, 37},   /* ld 40 over 37 rows */
        {{70, 3, 37}, {1, 2, 0}, 0},    /* batch dim strided: [3, 37, 70], ld 111 */
        {{1, 1000, 300}, {0, 2, 1}, 0}, /* 24 tiles: split across threads */
        {{2, 33, 2}, {0, 2, 1}, 0},     /* narrower than a tile */
        {{5, 40, 70}, {2, 0, 1}, 0},    /* src dense along the first dim: planes [70, 40] */
        {{33, 3, 45}, {2, 1, 0}, 40},   /* the same, reversed, off a narrowed layout */
    };
    for (int t = 1; t <= 2; t++) {
        tg_set_num_threads(t);
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            tg_scope_begin();
            const int64_t *sh = cases[k].shape;
            tg_tensor *x = tg_reshape(tg_arange(0, (float)(sh[0] * sh[1] * sh[2]), 1), 3, sh);
            if (cases[k].narrow_last)
                x = tg_narrow(x, 2, 0, cases[k].narrow_last);
            tg_tensor *v = tg_permute(x, cases[k].perm);
            tg_tensor *c = tg_contiguous(v);
            assert_true(tg_is_contiguous(c));
            const float *got = tg_data(c);
            const int64_t *vs = tg_shape(v), *st = tg_strides(v);
            int64_t i = 0;
            for (int64_t b = 0; b < vs[0]; b++)
                for (int64_t r = 0; r < vs[1]; r++)
                    for (int64_t col = 0; col < vs[2]; col++, i++) {
                        float want = (float)(v->offset + b * st[0] + r * st[1] + col * st[2]);
                        if (got[i] != want)
                            fail_msg("case %zu [%lld, %lld, %lld]: got %g, want %g", k,
                                     (long long)b, (long long)r, (long long)col, got[i], want);
                    }
            tg_scope_end();
        }
    }
    tg_set_num_threads(0);
}

/* Checks tg_contiguous(v) against v's own strides, element by element; v's storage holds its
 * own indices, so a value names the element it came from. Called inside a scope. */
static void check_copy_of_view(tg_tensor *v, const char *what)
{
    tg_tensor *c = tg_contiguous(v);
    assert_true(tg_is_contiguous(c));
    const float *got = tg_data(c);
    int nd = tg_ndim(v);
    const int64_t *vs = tg_shape(v), *st = tg_strides(v);
    int64_t n = tg_numel(v), idx[3] = {0, 0, 0};
    for (int64_t i = 0; i < n; i++) {
        int64_t off = v->offset;
        for (int d = 0; d < nd; d++)
            off += idx[d] * st[d];
        if (got[i] != (float)off)
            fail_msg("%s (threads %d, %s): element %lld is %g, want %g", what, tg_get_num_threads(),
                     tg_isa(), (long long)i, got[i], (double)off);
        for (int d = nd - 1; d >= 0 && ++idx[d] == vs[d]; d--)
            idx[d] = 0;
    }
    /* c is the caller's scope's to release */
}

/* Transposed copies of odd shapes through each family's transpose kernel (ctest runs this
 * once per family): blocks thinner than a vector, rows and columns off every square and tile,
 * [1, n] and [n, 1] views, and 3-D permutations whose planes take the tile path, on 1 and 3
 * threads (3 splits a tile grid unevenly). */
static void test_transposed_copies_odd_shapes(void **state)
{
    (void)state;
    const int64_t mats[][2] = {{1000, 3}, {3, 1000}, {17, 33}, {33, 17}, {2, 2},
                               {5, 37},   {37, 5},   {1, 9},   {9, 1},   {1000, 300}};
    const struct {
        int64_t shape[3];
        int perm[3];
    } perms[] = {
        {{4, 17, 33}, {0, 2, 1}},  {{17, 5, 33}, {2, 1, 0}}, {{3, 1000, 3}, {0, 2, 1}},
        {{3, 5, 1000}, {2, 0, 1}}, {{7, 9, 11}, {1, 2, 0}},  {{16, 2, 48}, {2, 1, 0}},
    };
    for (int t = 1; t <= 3; t += 2) {
        tg_set_num_threads(t);
        for (size_t k = 0; k < sizeof mats / sizeof mats[0]; k++) {
            tg_scope_begin();
            const int64_t *sh = mats[k];
            tg_tensor *x = tg_reshape(tg_arange(0, (float)(sh[0] * sh[1]), 1), 2, sh);
            check_copy_of_view(tg_transpose(x, 0, 1), "transpose");
            /* one row, and one column, of the transpose: [1, rows] and [cols, 1] views */
            tg_tensor *xt = tg_transpose(x, 0, 1);
            check_copy_of_view(tg_narrow(xt, 0, sh[1] - 1, 1), "row of a transpose");
            check_copy_of_view(tg_narrow(xt, 1, sh[0] / 2, 1), "column of a transpose");
            /* the transpose of a narrowed matrix: a leading dim past the rows */
            if (sh[1] > 2)
                check_copy_of_view(tg_transpose(tg_narrow(x, 1, 1, sh[1] - 2), 0, 1),
                                   "transpose of a narrowed matrix");
            tg_scope_end();
        }
        for (size_t k = 0; k < sizeof perms / sizeof perms[0]; k++) {
            tg_scope_begin();
            const int64_t *sh = perms[k].shape;
            tg_tensor *x = tg_reshape(tg_arange(0, (float)(sh[0] * sh[1] * sh[2]), 1), 3, sh);
            check_copy_of_view(tg_permute(x, perms[k].perm), "permute");
            tg_scope_end();
        }
    }
    tg_set_num_threads(0);
}

/* The large-buffer cache keeps serving a loop after it has been filled with sizes the loop does
 * not use: the oldest cached buffers make room, so the loop allocates fresh memory once. */
static void test_buffer_cache_serves_new_sizes(void **state)
{
    (void)state;
    for (int64_t k = 0; k < 40; k++) { /* more sizes than the cache has slots, all released */
        int64_t n = 100000 + k * 5000;
        tg_release(tg_zeros(1, &n));
    }
    int64_t n = 3000000, before = tg_alloc_fresh_count();
    for (int i = 0; i < 10; i++) {
        tg_tensor *a = tg_zeros(1, &n), *b = tg_add_scalar(a, 1.0f); /* two live at once */
        tg_tensor *s = tg_sum(b);
        assert_true(tg_item(s) == 3e6f);
        tg_release(a), tg_release(b), tg_release(s);
    }
    int64_t fresh = tg_alloc_fresh_count() - before;
    if (fresh > 2)
        fail_msg("a loop of 10 steps allocated %lld fresh buffers, want at most 2",
                 (long long)fresh);
}

static void test_copy_to_any_strides(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *m = tg_reshape(tg_arange(0, 24, 1), 3, (int64_t[]){2, 3, 4});
    float out[64];
    tg_tensor *p = tg_permute(m, (int[]){2, 0, 1});
    assert_int_equal(tg_copy_to(p, out, 64), 24);
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++)
                assert_true(out[k * 6 + i * 3 + j] == (float)(i * 12 + j * 4 + k));
    tg_tensor *n = tg_narrow(tg_narrow(m, 2, 1, 2), 1, 1, 2); /* [2, 2, 2] */
    assert_int_equal(tg_copy_to(n, out, 8), 8);
    const float want_n[8] = {5, 6, 9, 10, 17, 18, 21, 22};
    assert_memory_equal(out, want_n, sizeof want_n);
    tg_tensor *e = tg_expand(tg_narrow(tg_narrow(m, 0, 1, 1), 1, 2, 1), 3, (int64_t[]){2, 2, 4});
    assert_int_equal(tg_copy_to(e, out, 16), 16);
    for (int i = 0; i < 16; i++)
        assert_true(out[i] == (float)(20 + i % 4));
    assert_int_equal(tg_copy_to(tg_scalar(3.0f), out, 1), 1);
    assert_true(out[0] == 3.0f);
    /* too small a buffer, NULL buffer */
    assert_int_equal(tg_copy_to(p, out, 23), -1);
    assert_int_equal(tg_last_status(), TG_EINVAL);
    assert_int_equal(tg_copy_to(p, NULL, 64), -1);
    assert_int_equal(tg_copy_to(NULL, out, 64), -1);
    assert_int_equal(tg_copy_to(tg_zeros(1, (int64_t[]){0}), out, 0), 0);
    tg_scope_end();
}

static void test_item_and_data_errors(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *v = tg_arange(0, 3, 1);
    assert_true(isnan(tg_item(v)));
    assert_int_equal(tg_last_status(), TG_ESHAPE);
    assert_non_null(strstr(tg_last_error(), "tg_item"));
    assert_non_null(strstr(tg_last_error(), "[3]"));
    assert_true(tg_item(tg_full(2, (int64_t[]){1, 1}, 4.0f)) == 4.0f);
    assert_int_equal(tg_last_status(), TG_OK);
    assert_string_equal(tg_last_error(), "");
    assert_true(tg_item(tg_narrow(v, 0, 2, 1)) == 2.0f); /* offset view */
    assert_true(isnan(tg_item(NULL)));
    assert_int_equal(tg_last_status(), TG_EINVAL);
    assert_true(isnan(tg_item(tg_zeros(1, (int64_t[]){0}))));
    assert_int_equal(tg_last_status(), TG_ESHAPE);

    tg_tensor *m = tg_reshape(tg_arange(0, 6, 1), 2, (int64_t[]){2, 3});
    assert_null(tg_data(tg_transpose(m, 0, 1)));
    assert_int_equal(tg_last_status(), TG_EINVAL);
    assert_non_null(strstr(tg_last_error(), "tg_data"));
    float *row = tg_data(tg_narrow(m, 0, 1, 1));
    assert_ptr_equal(row, tg_data(m) + 3);
    assert_null(tg_data(NULL));
    tg_scope_end();
}

/* ---- scopes ---- */

static void test_scope_releases_all_but_kept(void **state)
{
    (void)state;
    tg_tensor *outside = tg_ones(1, (int64_t[]){3});
    tg_scope_begin();
    tg_tensor *a = tg_full(1, (int64_t[]){3}, 2.0f);
    tg_tensor *b = tg_add(a, outside);
    tg_tensor *c = tg_mul(b, b);
    tg_tensor *v = tg_narrow(c, 0, 0, 2);
    tg_retain(a); /* a watcher reference: the scope must drop exactly its own */
    tg_retain(b);
    assert_int_equal(a->refcount, 2);
    tg_tensor *kept = tg_keep(c);
    assert_ptr_equal(kept, c);
    tg_scope_end();
    assert_int_equal(a->refcount, 1);
    assert_int_equal(b->refcount, 1);
    assert_int_equal(c->refcount, 1); /* kept: now owned by us */
    assert_int_equal(outside->refcount, 1);
    assert_exact(c, (float[]){9, 9, 9}, 3);
    (void)v; /* released by the scope; c's storage survives through c */
    assert_int_equal(c->storage->refcount, 1);
    tg_release(a), tg_release(b), tg_release(c), tg_release(outside);
}

static void test_nested_scopes(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *outer = tg_ones(1, (int64_t[]){2});
    tg_retain(outer);
    tg_scope_begin();
    tg_tensor *inner = tg_add_scalar(outer, 1.0f);
    tg_retain(inner);
    tg_tensor *kept = tg_keep(tg_mul_scalar(inner, 2.0f));
    tg_scope_end();
    assert_int_equal(inner->refcount, 1); /* inner scope released it */
    assert_int_equal(outer->refcount, 2); /* outer scope still holds it */
    tg_scope_end();
    assert_int_equal(outer->refcount, 1);
    assert_exact(kept, (float[]){4, 4}, 2);
    assert_int_equal(kept->refcount, 1);
    tg_release(kept), tg_release(inner), tg_release(outer);
    /* an unmatched end is reported, not a crash */
    tg_scope_end();
    assert_int_equal(tg_last_status(), TG_EINVAL);
    assert_null(tg_keep(NULL));
}

static void test_scope_keeps_graph_alive_for_kept_result(void **state)
{
    (void)state;
    tg_tensor *x = tg_requires_grad_(tg_from_data((float[]){1, 2}, 1, (int64_t[]){2}), true);
    tg_scope_begin();
    tg_tensor *loss = tg_keep(tg_sum(tg_mul(tg_exp(x), x)));
    tg_scope_end(); /* every intermediate is gone; the graph still holds what it needs */
    assert_int_equal(tg_backward(loss, NULL, false), TG_OK);
    float g[2];
    tg_copy_to(tg_grad(x), g, 2);
    assert_true(tg_test_close(g[0], 2 * exp(1.0), 1e-6, 0));
    assert_true(tg_test_close(g[1], 3 * exp(2.0), 1e-6, 0));
    tg_release(loss), tg_release(x);
}

/* ---- 0-d and empty tensors ---- */

static void test_zero_dim_tensors(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *a = tg_scalar(3.0f), *b = tg_scalar(-2.0f);
    tg_tensor *r[] = {tg_add(a, b),
                      tg_mul(a, b),
                      tg_exp(b),
                      tg_sum(a),
                      tg_mean(b),
                      tg_sum_dim(a, 0, false),
                      tg_mean_dim(a, -1, true),
                      tg_transpose(a, 0, -1),
                      tg_permute(a, (int[]){0}),
                      tg_contiguous(a)};
    const float want[] = {1, -6, expf(-2.0f), 3, -2, 3, 3, 3, 3, 3};
    for (size_t i = 0; i < sizeof r / sizeof r[0]; i++) {
        assert_non_null(r[i]);
        assert_int_equal(tg_ndim(r[i]), 0);
        assert_true(tg_item(r[i]) == want[i]);
    }
    tg_tensor *one = tg_reshape(a, 1, (int64_t[]){1});
    assert_shape(one, 1, (int64_t[]){1});
    tg_tensor *back = tg_reshape(one, 0, NULL);
    assert_int_equal(tg_ndim(back), 0);
    tg_tensor *ex = tg_expand(a, 2, (int64_t[]){2, 3});
    assert_exact(ex, (float[]){3, 3, 3, 3, 3, 3}, 6);
    tg_tensor *m = tg_add(a, tg_ones(2, (int64_t[]){2, 2})); /* scalar broadcast */
    assert_exact(m, (float[]){4, 4, 4, 4}, 4);
    char *s = tg_repr(a);
    assert_string_equal(s, "tensor(3.)");
    free(s);
    tg_scope_end();
}

static void test_empty_tensors(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *e = tg_zeros(2, (int64_t[]){3, 0});
    assert_int_equal(tg_numel(e), 0);
    assert_shape(tg_exp(e), 2, (int64_t[]){3, 0});
    assert_shape(tg_add(e, tg_ones(1, (int64_t[]){1})), 2, (int64_t[]){3, 0});
    assert_shape(tg_add(e, tg_ones(2, (int64_t[]){3, 1})), 2, (int64_t[]){3, 0});
    assert_shape(tg_transpose(e, 0, 1), 2, (int64_t[]){0, 3});
    assert_shape(tg_reshape(e, 1, (int64_t[]){0}), 1, (int64_t[]){0});
    assert_shape(tg_reshape(e, 3, (int64_t[]){0, 5, 2}), 3, (int64_t[]){0, 5, 2});
    assert_shape(tg_narrow(tg_ones(1, (int64_t[]){4}), 0, 4, 0), 1, (int64_t[]){0});
    assert_true(tg_item(tg_sum(e)) == 0.0f);
    assert_true(isnan(tg_item(tg_mean(e)))); /* 0/0, as torch.zeros(3, 0).mean() */
    tg_tensor *s1 = tg_sum_dim(e, 1, false); /* sums of nothing */
    assert_exact(s1, (float[]){0, 0, 0}, 3);
    assert_shape(tg_sum_dim(e, 0, true), 2, (int64_t[]){1, 0});
    tg_tensor *mm = tg_matmul(e, tg_ones(2, (int64_t[]){0, 4}));
    assert_shape(mm, 2, (int64_t[]){3, 4});
    assert_true(tg_item(tg_sum(mm)) == 0.0f);
    assert_shape(tg_expand(tg_zeros(1, (int64_t[]){1}), 2, (int64_t[]){0, 1}), 2,
                 (int64_t[]){0, 1});
    char *s = tg_repr(tg_zeros(1, (int64_t[]){0}));
    assert_string_equal(s, "tensor([])");
    free(s);
    /* and through backward */
    tg_tensor *x = tg_requires_grad_(tg_zeros(1, (int64_t[]){0}), true);
    assert_int_equal(tg_backward(tg_sum(tg_exp(x)), NULL, false), TG_OK);
    assert_non_null(tg_grad(x));
    assert_int_equal(tg_numel(tg_grad(x)), 0);
    tg_scope_end();
}

/* An empty tensor is contiguous whatever its strides, as in PyTorch (torch.zeros(3, 0).t(),
 * .permute() of a [0, 3, 2] tensor, an expand to [0, 1] and a reshape of a [2, 0, 0, 3] tensor
 * all give is_contiguous() True), so tg_data accepts it; and its strides are PyTorch's. */
static void test_empty_views_are_contiguous(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *t = tg_transpose(tg_zeros(2, (int64_t[]){3, 0}), 0, 1);
    assert_true(tg_is_contiguous(t));
    assert_non_null(tg_data(t));
    assert_true(tg_is_contiguous(tg_permute(tg_zeros(3, (int64_t[]){0, 3, 2}), (int[]){2, 0, 1})));
    assert_true(tg_is_contiguous(tg_expand(tg_zeros(1, (int64_t[]){1}), 2, (int64_t[]){0, 1})));
    assert_true(tg_is_contiguous(
        tg_reshape(tg_zeros(4, (int64_t[]){2, 0, 0, 3}), 3, (int64_t[]){4, 0, 5})));
    assert_true(
        tg_is_contiguous(tg_narrow(tg_transpose(tg_zeros(2, (int64_t[]){4, 3}), 0, 1), 1, 2, 0)));
    /* strides as PyTorch gives them: a size-0 dim counts as 1 (torch.zeros(4, 0, 5).stride()
     * is (5, 5, 1), torch.zeros(2, 0).t().contiguous().stride() is (1, 1)) */
    const int64_t *st = tg_strides(tg_zeros(3, (int64_t[]){4, 0, 5}));
    assert_int_equal(st[0], 5);
    assert_int_equal(st[1], 5);
    assert_int_equal(st[2], 1);
    st = tg_strides(tg_contiguous(tg_transpose(tg_zeros(2, (int64_t[]){2, 0}), 0, 1)));
    assert_int_equal(st[0], 1);
    assert_int_equal(st[1], 1);
    tg_scope_end();
}

int main(void)
{
    if (tg_test_isa_unavailable())
        return TG_TEST_SKIP;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_and_from_data),
        cmocka_unit_test(test_zeros_ones_full),
        cmocka_unit_test(test_arange_matches_torch),
        cmocka_unit_test(test_rand_randn_seeded),
        cmocka_unit_test(test_views_share_storage),
        cmocka_unit_test(test_view_outlives_base),
        cmocka_unit_test(test_reshape_copies_only_when_needed),
        cmocka_unit_test(test_reshape_random_layouts),
        cmocka_unit_test(test_contiguous),
        cmocka_unit_test(test_transposed_copies),
        cmocka_unit_test(test_transposed_copies_odd_shapes),
        cmocka_unit_test(test_copy_to_any_strides),
        cmocka_unit_test(test_buffer_cache_serves_new_sizes),
        cmocka_unit_test(test_item_and_data_errors),
        cmocka_unit_test(test_scope_releases_all_but_kept),
        cmocka_unit_test(test_nested_scopes),
        cmocka_unit_test(test_scope_keeps_graph_alive_for_kept_result),
        cmocka_unit_test(test_zero_dim_tensors),
        cmocka_unit_test(test_empty_tensors),
        cmocka_unit_test(test_empty_views_are_contiguous),
    };
    /* Ops split across threads from 32768 elements here, not from the default grain, so that
     * the split paths run on inputs of test size (1 against 3 threads, bit for bit). */
    tg_parallel_set_grain(32768);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
