# `cmake --install` and the Debian package: both binaries, the systemd unit, the docs.
#   cmake -S . -B build/deb -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF -DPSNIC_BENCH=OFF
#   cmake --build build/deb && (cd build/deb && cpack)
# gives psnic_VERSION_ARCH.deb (binaries stripped) and psnic-dbgsym_VERSION_ARCH.ddeb (their
# debug symbols by build id, for gdb or debuginfod). Depends comes from dpkg-shlibdeps (dpkg-dev).
# The binaries' install() rules are beside their targets (resolver/, agent/).

# Relative to the prefix (/usr in the package): /usr/lib/systemd/system is /lib/systemd/system
# on a merged-/usr system such as Debian 12.
install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/psnic-agent.service
        DESTINATION lib/systemd/system)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/LICENSE
        DESTINATION share/doc/psnic)

set(PSNIC_DEB_MAINTAINER "psnic maintainers <psnic@localhost>"
    CACHE STRING "Maintainer field of the Debian package")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME psnic)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
string(CONCAT CPACK_PACKAGE_DESCRIPTION
       "psnic PID names the host interface that carries a container's traffic. psnic-agent "
       "counts every container's traffic in the kernel (a TC eBPF program on each host veth) and "
       "serves it to Prometheus; psnic-agent.service runs it confined.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${PSNIC_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_DEBUGINFO_PACKAGE ON)
include(CPack)
