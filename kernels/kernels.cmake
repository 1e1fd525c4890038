# Kernel sources and their per-family compile flags. Included from the top-level CMakeLists
# after pkg_check_modules(SLEEF ...); paths are relative to ${CMAKE_CURRENT_SOURCE_DIR}.
#
# Sets:
#   TG_KERNEL_SOURCES      every kernel .c file (scalar, dispatch and the families built here)
#   TG_KERNEL_DEFINITIONS  TG_HAVE_<FAMILY> for each family built, for dispatch.c
#
# The library is built for the baseline ISA; only a family's own file gets its -m flags, and
# dispatch.c installs that family after CPUID says the CPU has it.
#
# Every kernel file gets -ffp-contract=off: the compiler may not fuse a multiply and an add into
# an FMA behind our back (GCC does by default in GNU mode, clang within an expression), so a
# kernel's rounding is the one written in the source, the SIMD families can stay bit-identical to
# the scalar one where they say so, and results do not change with the compiler.

include(CheckCCompilerFlag)

set(TG_KERNEL_SOURCES kernels/scalar/scalar.c kernels/dispatch.c)
set(TG_KERNEL_DEFINITIONS "")
set(TG_KERNEL_FP_FLAGS -ffp-contract=off)

set_source_files_properties(kernels/scalar/scalar.c PROPERTIES COMPILE_OPTIONS "${TG_KERNEL_FP_FLAGS}")

if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  set(TG_AVX2_FLAGS -mavx2 -mfma)
  set(TG_AVX512_FLAGS -mavx512f -mavx512dq -mavx512vl -mavx512bw -mavx2 -mfma)
  check_c_compiler_flag("${TG_AVX2_FLAGS}" TG_CC_HAS_AVX2)
  check_c_compiler_flag("-mavx512f -mavx512dq -mavx512vl -mavx512bw" TG_CC_HAS_AVX512)
  if(TG_CC_HAS_AVX2)
    list(APPEND TG_KERNEL_SOURCES kernels/avx2/avx2.c)
    list(APPEND TG_KERNEL_DEFINITIONS TG_HAVE_AVX2)
    set_source_files_properties(kernels/avx2/avx2.c PROPERTIES
      COMPILE_OPTIONS "${TG_AVX2_FLAGS};${TG_KERNEL_FP_FLAGS}")
  endif()
  if(TG_CC_HAS_AVX512)
    list(APPEND TG_KERNEL_SOURCES kernels/avx512/avx512.c)
    list(APPEND TG_KERNEL_DEFINITIONS TG_HAVE_AVX512)
    set_source_files_properties(kernels/avx512/avx512.c PROPERTIES
      COMPILE_OPTIONS "${TG_AVX512_FLAGS};${TG_KERNEL_FP_FLAGS}")
  endif()
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64|ARM64)$")
  # Advanced SIMD is part of the AArch64 baseline: no extra -m flag.
  list(APPEND TG_KERNEL_SOURCES kernels/neon/neon.c)
  list(APPEND TG_KERNEL_DEFINITIONS TG_HAVE_NEON)
  set_source_files_properties(kernels/neon/neon.c PROPERTIES COMPILE_OPTIONS "${TG_KERNEL_FP_FLAGS}")
endif()

message(STATUS "tapegrad kernel families: scalar ${TG_KERNEL_DEFINITIONS}")
