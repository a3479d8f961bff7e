# psnic_expose(<target> <PUBLIC|INTERFACE> <header>...)
#
# The layering rule, enforced by the build: a target sees its own headers and those of the
# targets it links, and nothing else. Each target gets an include root of its own,
# build/include/<target>/<folder>/<header>, holding links to exactly the headers listed here
# (the current folder's), so that `#include "agent/host_agent.h"` compiles only in targets that
# link the one exposing it. The source tree itself is on no library's include path: an upward
# include, or one of a header nobody exposes, fails to compile.
function(psnic_expose target scope)
  file(RELATIVE_PATH folder "${PROJECT_SOURCE_DIR}" "${CMAKE_CURRENT_SOURCE_DIR}")
  set(root "${PROJECT_BINARY_DIR}/include/${target}")
  file(REMOVE_RECURSE "${root}")
  file(MAKE_DIRECTORY "${root}/${folder}")
  foreach(header IN LISTS ARGN)
    if(NOT EXISTS "${CMAKE_CURRENT_SOURCE_DIR}/${header}")
      message(FATAL_ERROR "psnic_expose(${target}): no ${folder}/${header}")
    endif()
    file(CREATE_LINK "${CMAKE_CURRENT_SOURCE_DIR}/${header}" "${root}/${folder}/${header}" SYMBOLIC)
  endforeach()
  target_include_directories(${target} ${scope} "${root}")
endfunction()
