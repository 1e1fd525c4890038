/* The CSV reader's fast row parser for CPUs with AVX-512 (F, BW, DQ, VL), BMI1 and POPCNT;
 * see csv_fast.h.
 *
 * A row is parsed in two stages, so that no work waits on the outcome of a data-dependent branch:
 *  1. 64-byte windows give bit masks of the delimiters, line feeds and quotes; the positions of
 *     all delimiters of the row are written to an array, eight at a time;
 *  2. the fields are converted eight at a time: the last 16 bytes of each field fill one 128-bit
 *     lane, and every step (checking the characters, removing the point, digits to an integer,
 *     the scaling and the rounding check) runs on all eight at once. A field the batch cannot
 *     handle (exponents, 17 or more characters, near-midpoint values, junk) goes to the scalar
 *     parser, and a row with any problem at all to the general one in csv.c.
 *
 * Exactness: for a field [+-]digits[.digits] of at most 16 characters, the batch computes
 * w (the digits without the point, < 10^16) and nf (digits after the point), then
 * d = double(w) * double(10^-nf) with the same three correctly rounded steps as
 * tg_decimal_to_float_() (conversion of w, the table entry, which is the same literal, and the
 * product), so d is bit for bit the d of the scalar path. The same test then accepts it: d is
 * within 4 double ulps of the exact value, and when its 29 low mantissa bits are more than 8 away
 * from the pattern of a float midpoint (and d >= 2^-125, away from float subnormals), rounding d
 * to float gives the correctly rounded float of the exact decimal, i.e. what strtof gives. Zero
 * (w == 0) is exact. The sign is applied after rounding, which is symmetric. */
#if defined(TG_HAVE_CSV_AVX512)

#include <immintrin.h>

#include "csv_fast.h"
#include "float_parse.h"

/* csv_avx512_vbmi2.c compiles this file again with AVX512-VBMI2, whose byte compress finds a
 * row's field ends with fewer instructions. */
#if defined(CSV_AVX512_VBMI2)
#define CSV_FAST_ROW csv_fast_row_avx512_vbmi2
#else
#define CSV_FAST_ROW csv_fast_row_avx512
#endif

/* Stage 1: ends[c + 1] = offset from p of the end of field c (its delimiter; for the last field
 * the line feed, or the '\r' before it), ends[0] = -1. False when the row is not ncols fields
 * without quotes ending at least 64 bytes before the end of the input. */
static inline bool find_fields(const csv_fast_plan *pl, const char *p, int64_t *ends)
{
    const __m512i vd = _mm512_set1_epi8(pl->delim), vn = _mm512_set1_epi8('\n');
    const __m512i vq = _mm512_set1_epi8('"');
    const int want = pl->ncols - 1; /* delimiters in the row */
    csv_blank_walk blanks = csv_blank_start();
#if defined(CSV_AVX512_VBMI2)
    const __m512i iota = _mm512_set_epi8(
        63, 62, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41,
        40, 39, 38, 37, 36, 35, 34, 33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18,
        17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
#endif
    int64_t *out = ends + 1;
    int k = 0;
    ends[0] = -1;
    for (const char *b = p;; b += 64) {
        if (pl->end - b < 64)
            return false;
        const __m512i v = _mm512_loadu_si512((const void *)b);
        const uint64_t line = _mm512_cmpeq_epi8_mask(v, vn);
        const uint64_t upto = line ^ (line - 1); /* through the first line feed; all if none */
        if (_mm512_cmpeq_epi8_mask(v, vq) & upto)
            return false;
        uint64_t d = _mm512_cmpeq_epi8_mask(v, vd) & upto;
        const int cnt = __builtin_popcountll(d);
        if (k + cnt > want)
            return false;
        if (pl->spaces &&
            !csv_blank_window(&blanks, d, _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('\t')) & upto,
                              _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('\r')) & upto))
            return false;
        const int64_t off = b - p;
#if defined(CSV_AVX512_VBMI2)
        /* The delimiters' byte positions, packed into the low bytes by one compress, are
         * widened and stored eight at a time (the array has room for the unconditional eight):
         * usually one step, against eight bit scans for eight delimiters. */
        __m512i pos = _mm512_maskz_compress_epi8(d, iota);
        const __m512i voff = _mm512_set1_epi64(off);
        for (int i = 0; i < cnt; i += 8) {
            const __m512i e8 = _mm512_cvtepu8_epi64(_mm512_castsi512_si128(pos));
            _mm512_storeu_si512((void *)(out + k + i), _mm512_add_epi64(e8, voff));
            pos = _mm512_alignr_epi64(_mm512_setzero_si512(), pos, 1); /* the next eight */
        }
#else
        /* Eight unconditional stores per step (the array has room): usually one step, so the
         * loop exit is predictable, unlike one iteration per delimiter. */
        for (int i = 0; i < cnt; i += 8)
            for (int j = 0; j < 8; j++) {
                out[k + i + j] = off + (int64_t)_tzcnt_u64(d);
                d = _blsr_u64(d);
            }
#endif
        k += cnt;
        if (line) {
            if (k != want)
                return false;
            const int64_t lf = off + (int64_t)_tzcnt_u64(line);
            int64_t e = lf;
            if (e > ends[want] + 1 && p[e - 1] == '\r')
                e--;
            ends[want + 1] = e;
            return !pl->spaces || csv_blank_end(&blanks, p + ends[want] + 1, p + e, p + lf);
        }
    }
}

/* The 16 bytes that end at the end of field c (the bytes before p - 16 are in the input). */
static inline __m128i field_tail(const char *p, const int64_t *ends, int c)
{
    return _mm_loadu_si128((const __m128i *)(const void *)(p + ends[c + 1] - 16));
}

static inline __m512i four_tails(const char *p, const int64_t *ends, const int *idx)
{
    __m512i z = _mm512_castsi128_si512(field_tail(p, ends, idx[0]));
    z = _mm512_inserti32x4(z, field_tail(p, ends, idx[1]), 1);
    z = _mm512_inserti32x4(z, field_tail(p, ends, idx[2]), 2);
    return _mm512_inserti32x4(z, field_tail(p, ends, idx[3]), 3);
}

/* Byte j of each 128-bit lane holds 15 - j: how many bytes of the field follow byte j. */
static const unsigned char rev_tab[64] = {15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
                                          15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
                                          15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
                                          15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0};

/* Four fields, one per 128-bit lane of v (the field is the last len bytes of its lane; every
 * byte of lane k of len holds min(len_k, 255)). Sets the first 64-bit element of each lane:
 * in *octs the digits, point removed, as two 32-bit halves of 8 digits (more significant
 * first); in *sum a summary whose bits are
 *   0-3: digits after the point, 4: a '-' sign, 5: a '+' sign, 6: a point, >= 7: invalid (a
 *   byte that is no digit, or a second point). */
static TG_ALWAYS_INLINE void four_fields(__m512i v, __m512i len, __m512i *octs, __m512i *sum)
{
    const __m512i rev = _mm512_loadu_si512((const void *)rev_tab);
    const __m512i t = _mm512_sub_epi8(v, _mm512_set1_epi8('0'));
    const __mmask64 in = _mm512_cmplt_epu8_mask(rev, len);
    const __mmask64 first = _mm512_cmpeq_epi8_mask(rev, _mm512_sub_epi8(len, _mm512_set1_epi8(1)));
    const __mmask64 minus = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('-')) & first;
    const __mmask64 plus = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('+')) & first;
    const __mmask64 body = in & ~(minus | plus);
    const __mmask64 dig = _mm512_cmple_epu8_mask(t, _mm512_set1_epi8(9)) & body;
    const __mmask64 pt = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('.')) & body;
    const __mmask64 bad = body & ~(dig | pt);
    /* One code byte per mark; their lane sums cannot collide below 128 since a lane has at
     * most one sign byte, and two points alone reach 128. */
    __m512i code = _mm512_maskz_mov_epi8(pt, _mm512_add_epi8(rev, _mm512_set1_epi8(64)));
    code = _mm512_mask_mov_epi8(code, minus, _mm512_set1_epi8(16));
    code = _mm512_mask_mov_epi8(code, plus, _mm512_set1_epi8(32));
    code = _mm512_mask_mov_epi8(code, bad, _mm512_set1_epi8((char)128));
    const __m512i sad = _mm512_sad_epu8(code, _mm512_setzero_si512());
    *sum = _mm512_add_epi64(sad, _mm512_bsrli_epi128(sad, 8));
    /* Remove the point: the digits at or before it move one byte later (towards the units).
     * Byte j is at or before the point when 15 - j >= nf (the digits after it); a lane without
     * a point compares with 64, which no byte reaches: (sum & 0x4f) ^ 0x40, in every byte. */
    const __m512i d = _mm512_maskz_mov_epi8(dig, t);
    const __m512i lim = _mm512_shuffle_epi8(
        _mm512_ternarylogic_epi64(*sum, _mm512_set1_epi64(0x4f), _mm512_set1_epi64(0x40), 0x6A),
        _mm512_setzero_si512());
    const __mmask64 before = _mm512_cmpge_epu8_mask(rev, lim);
    const __m512i digits = _mm512_mask_blend_epi8(before, d, _mm512_bslli_epi128(d, 1));
    /* 16 digits, earliest most significant: pairs, groups of 4, of 8. */
    const __m512i pairs = _mm512_maddubs_epi16(digits, _mm512_set1_epi16(0x010A));
    const __m512i quads = _mm512_madd_epi16(pairs, _mm512_set1_epi32(0x00010064));
    const __m512i quads16 = _mm512_packus_epi32(quads, quads); /* each <= 9999 */
    *octs = _mm512_madd_epi16(quads16, _mm512_set1_epi32(0x00012710));
}

/* Stage 2 for fields c0 .. c0 + 7 (only the first lim < 8 when fewer are left): writes dst[c]
 * for those the batch handles and returns a bit mask of the others (bit j: field c0 + j). */
static TG_ALWAYS_INLINE unsigned convert8(const char *p, const int64_t *ends, int c0, int lim,
                                          float *dst)
{
    int idx[8]; /* fields past the end repeat the last one: every load stays in the row */
    for (int j = 0; j < 8; j++)
        idx[j] = c0 + (j < lim ? j : lim - 1);
    const __m512i len =
        _mm512_sub_epi64(_mm512_sub_epi64(_mm512_loadu_si512((const void *)(ends + c0 + 1)),
                                          _mm512_loadu_si512((const void *)(ends + c0))),
                         _mm512_set1_epi64(1));
    const __m512i len8 = _mm512_broadcastq_epi64(_mm512_cvtusepi64_epi8(len));
    const __m512i spread =
        _mm512_set_epi64(0x0303030303030303, 0x0303030303030303, 0x0202020202020202,
                         0x0202020202020202, 0x0101010101010101, 0x0101010101010101, 0, 0);
    __m512i wa, sa, wb, sb;
    four_fields(four_tails(p, ends, idx), _mm512_shuffle_epi8(len8, spread), &wa, &sa);
    four_fields(four_tails(p, ends, idx + 4),
                _mm512_shuffle_epi8(len8, _mm512_add_epi8(spread, _mm512_set1_epi8(4))), &wb, &sb);
    const __m512i pick = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i octs = _mm512_permutex2var_epi64(wa, pick, wb);
    const __m512i w = _mm512_add_epi64(_mm512_mul_epu32(octs, _mm512_set1_epi64(100000000)),
                                       _mm512_srli_epi64(octs, 32));
    const __m512i sum = _mm512_permutex2var_epi64(sa, pick, sb);
    /* Valid: 1 to 16 characters, nothing invalid, and at least one digit (more characters
     * than signs and points). */
    const __m512i bit_count = _mm512_set1_epi64(0x0302020102010100); /* of 0 .. 7 */
    const __m512i marks = _mm512_shuffle_epi8(
        bit_count, _mm512_and_si512(_mm512_srli_epi64(sum, 4), _mm512_set1_epi64(7)));
    __mmask8 ok = _mm512_cmplt_epu64_mask(sum, _mm512_set1_epi64(128)) &
                  _mm512_cmple_epu64_mask(len, _mm512_set1_epi64(16)) &
                  _mm512_cmpgt_epi64_mask(len, marks);
    /* d = w * 10^-nf as in tg_decimal_to_float_ (same table values, same roundings). */
    const __m512d p10_lo = _mm512_set_pd(1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0);
    const __m512d p10_hi = _mm512_set_pd(1e-15, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9, 1e-8);
    const __m512i nf = _mm512_and_si512(sum, _mm512_set1_epi64(15));
    const __m512d d =
        _mm512_mul_pd(_mm512_cvtepi64_pd(w), _mm512_permutex2var_pd(p10_lo, nf, p10_hi));
    const __m512i low = _mm512_and_si512(_mm512_castpd_si512(d), _mm512_set1_epi64((1 << 29) - 1));
    const __mmask8 far_mid = _mm512_cmpgt_epu64_mask(
        _mm512_sub_epi64(low, _mm512_set1_epi64((1 << 28) - 8)), _mm512_set1_epi64(16));
    const __mmask8 normal = _mm512_cmp_pd_mask(d, _mm512_set1_pd(0x1p-125), _CMP_GE_OQ);
    const __mmask8 zero = _mm512_cmpeq_epi64_mask(w, _mm512_setzero_si512());
    ok &= zero | (far_mid & normal);
    __m256 f = _mm512_cvtpd_ps(d);
    const __mmask8 neg = _mm512_test_epi64_mask(sum, _mm512_set1_epi64(16));
    f = _mm256_mask_xor_ps(f, neg, f, _mm256_set1_ps(-0.0f));
    const __mmask8 lanes = (__mmask8)(lim >= 8 ? 0xff : (1u << lim) - 1);
    _mm256_mask_storeu_ps(dst + c0, lanes, f);
    return (unsigned)(lanes & ~ok);
}

/* A field the batch left: the scalar parser, which must end exactly at the field's end. The
 * byte there (delimiter, '\r' or '\n') cannot continue a number, so the unbounded scan stops. */
static bool scalar_field(const csv_fast_plan *pl, const char *p, const int64_t *ends, int c,
                         float *out)
{
    const char *s = p + ends[c] + 1, *e = p + ends[c + 1];
    return tg_parse_float_fast_impl_(s, pl->end, out, false) == e;
}

/* Rows in a row with most numbers left to the scalar parser before the batches pause, and for
 * how many rows they do. */
#define MISS_ROWS  8
#define PAUSE_ROWS 1024

/* Keeps count of rows whose numbers mostly needed the scalar parser (redone of nconv). */
static void note_misses(const csv_fast_plan *pl, csv_fast_scratch *sc, int redone)
{
    if (2 * redone <= pl->nconv) {
        sc->misses = 0;
    } else if (++sc->misses >= MISS_ROWS) {
        sc->misses = 0;
        sc->rest = PAUSE_ROWS;
    }
}

bool CSV_FAST_ROW(const csv_fast_plan *pl, csv_fast_scratch *sc, const char *p, float *x, float *y)
{
    int64_t *ends = sc->ends;
    if (!find_fields(pl, p, ends))
        return false;
    float *dst = pl->direct ? x : sc->vals;
    int redone = 0;
    for (int c0 = 0; c0 < pl->nconv; c0 += 8) {
        /* Full batches get a constant count: no lane needs a clamped index. */
        const int left = pl->nconv - c0;
        unsigned redo =
            left >= 8 ? convert8(p, ends, c0, 8, dst) : convert8(p, ends, c0, left, dst);
        redone += __builtin_popcount(redo);
        while (redo) {
            const int c = c0 + __builtin_ctz(redo);
            redo &= redo - 1;
            if (pl->role[c] >= 0 && !scalar_field(pl, p, ends, c, &dst[c]))
                return false;
        }
    }
    note_misses(pl, sc, redone);
    if (!pl->direct)
        for (int c = 0; c < pl->nconv; c++)
            if (pl->role[c] >= 0)
                x[pl->role[c]] = sc->vals[c];
    if (pl->label_col >= 0)
        return csv_fast_label(pl, sc, p + ends[pl->label_col] + 1, p + ends[pl->label_col + 1], y);
    return true;
}

#else
typedef int csv_avx512_not_built; /* ISO C wants something in a translation unit */
#endif
