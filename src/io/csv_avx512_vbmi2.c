/* The CSV reader's AVX-512 row parser (csv_avx512.c) built a second time with AVX512-VBMI2
 * (Ice Lake and later Xeons, AMD Zen 4), for CPUs that have it; see csv_fast.h. */
#if defined(TG_HAVE_CSV_VBMI2)
#define CSV_AVX512_VBMI2 1
#include "csv_avx512.c"
#else
typedef int csv_avx512_vbmi2_not_built; /* ISO C wants something in a translation unit */
#endif
