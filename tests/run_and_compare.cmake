# Runs PROGRAM and compares its stdout byte for byte with EXPECTED.
# EMULATOR (qemu-aarch64 when cross-compiling) runs the program; empty on the host.
execute_process(COMMAND ${EMULATOR} ${PROGRAM} OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} exited with ${rc}")
endif()
file(READ ${EXPECTED} want)
if(NOT out STREQUAL want)
  file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/actual_output.txt "${out}")
  message(FATAL_ERROR "output differs from ${EXPECTED}; got:\n${out}")
endif()
