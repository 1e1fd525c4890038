# The shared library's thread-local block must stay small. Its variables use the initial-exec
# model (src/core/tls.h), so a program that loads the library with dlopen must find room for the
# whole block in the static TLS area, where glibc keeps only a few hundred bytes spare for all
# such libraries together (tunable glibc.rtld.optional_static_tls, 512 bytes by default).
#
# A thread-local variable declared without TG_TLS would bring back a __tls_get_addr call on every
# access, so the library must not import that function either.
#
#   cmake -DLIB=libtapegrad.so -DREADELF=readelf -DNM=nm -DBUDGET=bytes -P this
foreach(var LIB READELF NM BUDGET)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "check_tls: -D${var}=... is required")
  endif()
endforeach()

execute_process(COMMAND ${NM} -D --undefined-only ${LIB} OUTPUT_VARIABLE undef
                ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "check_tls: ${NM} -D --undefined-only ${LIB} failed:\n${err}")
endif()
if(undef MATCHES "__tls_get_addr")
  message(FATAL_ERROR "check_tls: ${LIB} calls __tls_get_addr: a _Thread_local variable is "
                      "declared without TG_TLS (src/core/tls.h)")
endif()

execute_process(COMMAND ${READELF} -lW ${LIB} OUTPUT_VARIABLE out ERROR_VARIABLE err
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "check_tls: ${READELF} -lW ${LIB} failed:\n${err}")
endif()
# Program header line: TLS Offset VirtAddr PhysAddr FileSiz MemSiz Flg Align
string(REGEX MATCH "\n[ \t]*TLS[ \t]+0x[0-9a-f]+[ \t]+0x[0-9a-f]+[ \t]+0x[0-9a-f]+[ \t]+0x[0-9a-f]+[ \t]+0x([0-9a-f]+)"
       line "${out}")
if(NOT line)
  message(STATUS "check_tls: ${LIB} has no TLS segment")
  return()
endif()
math(EXPR size "0x${CMAKE_MATCH_1}")
if(size GREATER BUDGET)
  message(FATAL_ERROR "check_tls: the thread-local block of ${LIB} is ${size} bytes, over the "
                      "budget of ${BUDGET}: move large per-thread buffers to the heap (src/core/tls.h)")
endif()
message(STATUS "check_tls: thread-local block ${size} bytes (budget ${BUDGET})")
