# Runs `PROGRAM version` without TAPEGRAD_ISA, then with TAPEGRAD_ISA set to each of NAMES
# (families this CPU/build cannot run). Each forced run must exit 0, print exactly one warning
# line on stderr that names the setting and the family used instead, and print the same stdout
# as the plain run: the fallback is the family chosen when nothing is forced, the best one.
# EMULATOR (qemu-aarch64 when cross-compiling) runs the program; empty on the host.
unset(ENV{TAPEGRAD_ISA}) # the baseline must not inherit a family forced for the whole test run
execute_process(COMMAND ${EMULATOR} ${PROGRAM} version OUTPUT_VARIABLE plain ERROR_VARIABLE
                        plain_err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT plain_err STREQUAL "")
  message(FATAL_ERROR "${PROGRAM} version exited with ${rc}, stderr:\n${plain_err}")
endif()
if(NOT plain MATCHES "\\(kernels: ([a-z0-9]+), matrix products: [a-z]+\\)\n$")
  message(FATAL_ERROR "no kernel family in the output of ${PROGRAM} version:\n${plain}")
endif()
set(best ${CMAKE_MATCH_1})

foreach(name ${NAMES})
  set(ENV{TAPEGRAD_ISA} ${name})
  execute_process(COMMAND ${EMULATOR} ${PROGRAM} version OUTPUT_VARIABLE out ERROR_VARIABLE err
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "TAPEGRAD_ISA=${name}: exited with ${rc}, stderr:\n${err}")
  endif()
  # One line: a single newline, at the end.
  string(REGEX MATCHALL "\n" newlines "${err}")
  list(LENGTH newlines lines)
  if(NOT lines EQUAL 1 OR NOT err MATCHES "\n$")
    message(FATAL_ERROR "TAPEGRAD_ISA=${name}: want one warning line on stderr, got:\n${err}")
  endif()
  if(NOT err MATCHES "warning: TAPEGRAD_ISA=${name} " OR NOT err MATCHES "using ${best}\n$")
    message(FATAL_ERROR "TAPEGRAD_ISA=${name}: the warning does not name the setting and the "
                        "family used (${best}):\n${err}")
  endif()
  if(NOT out STREQUAL plain)
    message(FATAL_ERROR "TAPEGRAD_ISA=${name}: got\n${out}but without TAPEGRAD_ISA\n${plain}")
  endif()
endforeach()
