# Runs `PROGRAM version` with TAPEGRAD_GEMM unset, =blas, =tiles and =bogus, and checks the
# "matrix products:" it reports. blas: always openblas. tiles: tiles where the family in force
# has them (TILES_FAMILIES), openblas elsewhere. bogus: exit 0, one warning line naming the
# setting, and the same output as the unset run (the automatic choice).
# EMULATOR (qemu-aarch64 when cross-compiling) runs the program; empty on the host.
cmake_minimum_required(VERSION 3.13) # IN_LIST
function(run_version setting out_var err_var)
  if(setting STREQUAL "")
    unset(ENV{TAPEGRAD_GEMM})
  else()
    set(ENV{TAPEGRAD_GEMM} ${setting})
  endif()
  execute_process(COMMAND ${EMULATOR} ${PROGRAM} version OUTPUT_VARIABLE out ERROR_VARIABLE err
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "TAPEGRAD_GEMM=${setting}: exited with ${rc}, stderr:\n${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
  set(${err_var} "${err}" PARENT_SCOPE)
endfunction()

run_version("" plain plain_err)
if(NOT plain_err STREQUAL "" OR NOT plain MATCHES "kernels: ([a-z0-9]+), matrix products: (tiles|openblas)\\)")
  message(FATAL_ERROR "unexpected output of ${PROGRAM} version:\n${plain}${plain_err}")
endif()
set(family ${CMAKE_MATCH_1})

run_version(blas out err)
if(NOT err STREQUAL "" OR NOT out MATCHES "matrix products: openblas\\)")
  message(FATAL_ERROR "TAPEGRAD_GEMM=blas:\n${out}${err}")
endif()

set(want openblas)
if(family IN_LIST TILES_FAMILIES)
  set(want tiles)
endif()
run_version(tiles out err)
if(NOT err STREQUAL "" OR NOT out MATCHES "matrix products: ${want}\\)")
  message(FATAL_ERROR "TAPEGRAD_GEMM=tiles under ${family}: want ${want}, got\n${out}${err}")
endif()

run_version(bogus out err)
string(REGEX MATCHALL "\n" newlines "${err}")
list(LENGTH newlines lines)
if(NOT lines EQUAL 1 OR NOT err MATCHES "warning: TAPEGRAD_GEMM=bogus " OR NOT out STREQUAL plain)
  message(FATAL_ERROR "TAPEGRAD_GEMM=bogus: want one warning and the plain output, got\n"
                      "${out}${err}\nplain:\n${plain}")
endif()
