/* Thread-local storage that costs one load.
 *
 * A shared library's _Thread_local variables default to the general-dynamic model: every access
 * (or every function that makes one) calls __tls_get_addr. The seed graph (x^2 -> sin ->
 * backward) made 83 such calls per iteration, 18% of its instructions and about half its time
 * on this project's 2-core VMs: the per-thread free lists, the error status and the API depth
 * are read on every op.
 *
 * TG_TLS asks for the initial-exec model instead: the variable sits at a fixed offset from the
 * thread pointer, found with one load. The price is that the library's whole TLS block must be
 * placed in the static TLS area. For a library linked at start-up that is free; one loaded later
 * with dlopen takes it from the few hundred bytes glibc keeps spare for such libraries, and
 * dlopen fails when they are used up. So the block is kept small (tests/check_tls.cmake holds it
 * under a budget, tests/test_dlopen.c loads the library with dlopen): large per-thread buffers,
 * such as the error messages, live on the heap behind a TG_TLS pointer. */
#ifndef TG_CORE_TLS_H
#define TG_CORE_TLS_H

#if defined(__GNUC__) || defined(__clang__)
#define TG_TLS _Thread_local __attribute__((tls_model("initial-exec")))
#else
#define TG_TLS _Thread_local
#endif

#endif
