# psnic_add_gtest(NAME LABEL <unit|privileged|e2e> [FIXTURE name] SOURCES ...)
# One GoogleTest executable; each test case becomes a CTest test carrying LABEL, so
# `ctest -L privileged` selects a tier. FIXTURE is a CTest fixture the
# tests require (one: gtest_discover_tests cannot pass a list-valued property).
function(psnic_add_gtest name)
  cmake_parse_arguments(ARG "" "LABEL;FIXTURE" "SOURCES" ${ARGN})
  if(NOT ARG_LABEL OR NOT ARG_SOURCES)
    message(FATAL_ERROR "psnic_add_gtest(${name}): LABEL and SOURCES are required")
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE psnic_test_support GTest::gtest GTest::gtest_main)
  set(properties LABELS ${ARG_LABEL})
  if(NOT ARG_LABEL STREQUAL "unit")
    # Kernel-touching tiers start on a host cleared of earlier crashed runs' leftovers.
    # One at a time: an automatic agent under test attaches to every veth on the host, and two
    # tc attachments of psnic's filter to one veth would collide.
    list(APPEND properties FIXTURES_REQUIRED ${ARG_FIXTURE} RUN_SERIAL TRUE)
  endif()
  gtest_discover_tests(${name}
    TEST_PREFIX "${ARG_LABEL}."
    PROPERTIES ${properties}
    DISCOVERY_TIMEOUT 30)
endfunction()
