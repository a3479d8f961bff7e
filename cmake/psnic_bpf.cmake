# psnic_bpf_skeleton(<name> <source.bpf.c> [INCLUDES dir...])
#
# Compiles a BPF program with clang against the committed vmlinux.h (CO-RE) and generates its
# libbpf skeleton with bpftool. Defines the INTERFACE target psnic_bpf_<name>: link it to get
# "<name>.skel.h" on the include path and the build ordering. Usable from any directory; each
# call has its own custom target.

find_program(PSNIC_CLANG NAMES clang-14 clang REQUIRED)
find_program(PSNIC_BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(PSNIC_BPF_ARCH x86)
  set(PSNIC_VMLINUX_ARCH x86_64)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(PSNIC_BPF_ARCH arm64)
  set(PSNIC_VMLINUX_ARCH aarch64)
else()
  message(FATAL_ERROR "psnic: no BPF target arch for ${CMAKE_SYSTEM_PROCESSOR}")
endif()

option(PSNIC_REGENERATE_VMLINUX
       "Regenerate vmlinux/<arch>/vmlinux.h from this machine's /sys/kernel/btf/vmlinux" OFF)
set(PSNIC_VMLINUX_DIR "${PROJECT_SOURCE_DIR}/vmlinux/${PSNIC_VMLINUX_ARCH}")
if(PSNIC_REGENERATE_VMLINUX)
  message(STATUS "psnic: regenerating ${PSNIC_VMLINUX_DIR}/vmlinux.h from kernel BTF")
  # Dumped aside and renamed, so a failed dump leaves the committed header whole.
  execute_process(
    COMMAND ${PSNIC_BPFTOOL} btf dump file /sys/kernel/btf/vmlinux format c
    OUTPUT_FILE "${PSNIC_VMLINUX_DIR}/vmlinux.h.tmp"
    RESULT_VARIABLE vmlinux_result)
  if(NOT vmlinux_result EQUAL 0)
    file(REMOVE "${PSNIC_VMLINUX_DIR}/vmlinux.h.tmp")
    message(FATAL_ERROR "psnic: bpftool could not dump /sys/kernel/btf/vmlinux")
  endif()
  file(RENAME "${PSNIC_VMLINUX_DIR}/vmlinux.h.tmp" "${PSNIC_VMLINUX_DIR}/vmlinux.h")
endif()
if(NOT EXISTS "${PSNIC_VMLINUX_DIR}/vmlinux.h")
  message(FATAL_ERROR "psnic: ${PSNIC_VMLINUX_DIR}/vmlinux.h is missing (see vmlinux/README.md)")
endif()

function(psnic_bpf_skeleton name source)
  cmake_parse_arguments(ARG "" "" "INCLUDES" ${ARGN})
  get_filename_component(source "${source}" ABSOLUTE)
  set(out_dir "${CMAKE_CURRENT_BINARY_DIR}/bpf_${name}")
  set(object "${out_dir}/${name}.bpf.o")
  set(skeleton "${out_dir}/${name}.skel.h")
  set(include_flags -I${PSNIC_VMLINUX_DIR} -I${PROJECT_SOURCE_DIR}/bpf)
  foreach(dir ${ARG_INCLUDES})
    list(APPEND include_flags -I${dir})
  endforeach()

  add_custom_command(
    OUTPUT "${object}"
    COMMAND ${CMAKE_COMMAND} -E make_directory "${out_dir}"
    COMMAND ${PSNIC_CLANG} -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_${PSNIC_BPF_ARCH}
            ${include_flags} -c "${source}" -o "${object}"
    DEPENDS "${source}" "${PROJECT_SOURCE_DIR}/bpf/traffic.h" "${PSNIC_VMLINUX_DIR}/vmlinux.h"
    IMPLICIT_DEPENDS C "${source}"
    COMMENT "BPF ${name}: clang -target bpf"
    VERBATIM)
  add_custom_command(
    OUTPUT "${skeleton}"
    # Written aside and moved, so a failed run leaves no skeleton that looks up to date.
    COMMAND sh -c "\"$0\" gen skeleton \"$1\" name ${name}_bpf > \"$2.tmp\" && mv \"$2.tmp\" \"$2\""
            ${PSNIC_BPFTOOL} "${object}" "${skeleton}"
    DEPENDS "${object}"
    COMMENT "BPF ${name}: bpftool gen skeleton"
    VERBATIM)
  add_custom_target(psnic_bpf_${name}_skeleton DEPENDS "${skeleton}")

  add_library(psnic_bpf_${name} INTERFACE)
  add_dependencies(psnic_bpf_${name} psnic_bpf_${name}_skeleton)
  target_include_directories(psnic_bpf_${name} INTERFACE "${out_dir}" "${PROJECT_SOURCE_DIR}/bpf")
  target_link_libraries(psnic_bpf_${name} INTERFACE PkgConfig::LIBBPF)
endfunction()
