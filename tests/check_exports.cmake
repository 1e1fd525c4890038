# The shared library's exported symbols must be exactly what the public headers declare: a
# declared function that is not exported cannot be called by programs, and an exported internal
# one becomes de-facto ABI that programs can call or replace.
#
#   cmake -DLIB=libtapegrad.so -DNM=nm -DCC=cc -DINCLUDE_DIR=include -DWORK_DIR=dir -P this
#
# The declarations are read from the preprocessed headers (comments and macros gone), the
# exports from `nm -D --defined-only`. A top-level statement of the headers that is neither a
# typedef, a tag declaration nor a recognizable function or variable declaration fails the check,
# so that the parser never skips a declaration silently.
foreach(var LIB NM CC INCLUDE_DIR WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_exports: -D${var}=... is required")
  endif()
endforeach()

# Every public header, whether or not tapegrad.h includes it.
file(GLOB_RECURSE headers RELATIVE ${INCLUDE_DIR} ${INCLUDE_DIR}/*.h)
list(SORT headers)
set(tu "")
foreach(h ${headers})
  string(APPEND tu "#include \"${h}\"\n")
endforeach()
file(MAKE_DIRECTORY ${WORK_DIR})
file(WRITE ${WORK_DIR}/public_headers.c "${tu}")
execute_process(COMMAND ${CC} -std=c11 -E -I ${INCLUDE_DIR} ${WORK_DIR}/public_headers.c
                OUTPUT_VARIABLE pre ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "check_exports: preprocessing the public headers failed:\n${err}")
endif()

# Keep the lines that come from the public headers (line markers say which file each follows),
# dropping the system headers they include and any #pragma lines.
# Brackets and semicolons would be read as list syntax: they travel as @L@, @R@ and @S@.
get_filename_component(inc_abs ${INCLUDE_DIR} ABSOLUTE)
string(REPLACE "[" "@L@" pre "${pre}")
string(REPLACE "]" "@R@" pre "${pre}")
string(REPLACE ";" "@S@" pre "${pre}")
string(REGEX MATCHALL "[^\n]+" lines "${pre}")
set(keep OFF)
set(text "")
foreach(line IN LISTS lines)
  if(line MATCHES "^# [0-9]+ \"([^\"]*)\"")
    get_filename_component(from "${CMAKE_MATCH_1}" ABSOLUTE)
    string(FIND "${from}" "${inc_abs}/" at)
    if(at EQUAL 0)
      set(keep ON)
    else()
      set(keep OFF)
    endif()
  elseif(keep AND NOT line MATCHES "^[ \t]*#")
    string(APPEND text " ${line}")
  endif()
endforeach()

# Attributes go (they would hide the name before a declaration's parameters). Struct, union and
# enum bodies (innermost first) and function bodies become "{}"; a function body also ends its
# statement.
string(REGEX REPLACE "[ \t\r]+" " " text "${text}")
string(REGEX REPLACE "__attribute__ ?\\(\\(([^()]|\\([^()]*\\))*\\)\\)" "" text "${text}")
set(prev "")
while(NOT text STREQUAL prev)
  set(prev "${text}")
  string(REGEX REPLACE "{[^{}]*}" "@B@" text "${text}")
endwhile()
string(REGEX REPLACE "\\) ?@B@" ") @B@@S@" text "${text}")
string(REPLACE "@B@" "{}" text "${text}")

set(declared "")
string(REPLACE "@S@" "\n" text "${text}")
string(REGEX MATCHALL "[^\n]+" statements "${text}")
foreach(s IN LISTS statements)
  string(STRIP "${s}" s)
  if(s STREQUAL "" OR s MATCHES "^typedef[ ]" OR s MATCHES "^(static|_Static_assert)[ (]")
    continue() # no symbol: a type, a header-local function, a compile-time check
  endif()
  if(s MATCHES "^(struct|union|enum) [A-Za-z_][A-Za-z0-9_]*( ?{})?$")
    continue() # a tag declaration
  endif()
  string(FIND "${s}" "(" paren)
  if(paren GREATER -1)
    string(SUBSTRING "${s}" 0 ${paren} head)
    string(SUBSTRING "${s}" ${paren} -1 tail)
    if(tail MATCHES "^\\( ?\\* ?([A-Za-z_][A-Za-z0-9_]*) ?\\)")
      set(name "${CMAKE_MATCH_1}") # a variable holding a function pointer
    elseif(head MATCHES "([A-Za-z_][A-Za-z0-9_]*) ?$")
      set(name "${CMAKE_MATCH_1}") # a function
    else()
      message(FATAL_ERROR "check_exports: cannot read this declaration: ${s}")
    endif()
  elseif(s MATCHES "([A-Za-z_][A-Za-z0-9_]*)( ?@L@[^@]*@R@)*$")
    set(name "${CMAKE_MATCH_1}") # a variable
  else()
    message(FATAL_ERROR "check_exports: cannot read this declaration: ${s}")
  endif()
  list(APPEND declared ${name})
endforeach()
list(REMOVE_DUPLICATES declared)
list(SORT declared)

execute_process(COMMAND ${NM} -D --defined-only --format=posix ${LIB}
                OUTPUT_VARIABLE nm_out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "check_exports: ${NM} failed on ${LIB}:\n${err}")
endif()
set(exported "")
string(REGEX MATCHALL "[^\n]+" nm_lines "${nm_out}")
foreach(line IN LISTS nm_lines)
  if(line MATCHES "^([^ @]+)")
    list(APPEND exported ${CMAKE_MATCH_1})
  endif()
endforeach()
list(REMOVE_DUPLICATES exported)
list(SORT exported)

list(LENGTH declared n_declared)
list(LENGTH exported n_exported)
if(n_declared EQUAL 0 OR n_exported EQUAL 0)
  message(FATAL_ERROR "check_exports: ${n_declared} declarations and ${n_exported} exports read")
endif()
set(missing ${declared})
list(REMOVE_ITEM missing ${exported})
set(extra ${exported})
list(REMOVE_ITEM extra ${declared})
if(missing OR extra)
  string(REPLACE ";" " " missing "${missing}")
  string(REPLACE ";" " " extra "${extra}")
  message(FATAL_ERROR "check_exports: ${LIB} does not export exactly the public API.\n"
                      "declared in include/ but not exported: ${missing}\n"
                      "exported but not declared in include/: ${extra}")
endif()
message(STATUS "${n_exported} exported symbols, exactly the public declarations")
