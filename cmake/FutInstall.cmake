# Install rules: the header, both libraries, a CMake package (fut::fut,
# fut::fut_static) and a pkg-config file.
include(CMakePackageConfigHelpers)

install(TARGETS fut fut_static EXPORT futTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES include/fut/fut.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/fut)

set(FUT_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/fut)
install(EXPORT futTargets NAMESPACE fut:: DESTINATION ${FUT_CMAKE_DIR})
configure_package_config_file(cmake/futConfig.cmake.in
  ${PROJECT_BINARY_DIR}/futConfig.cmake INSTALL_DESTINATION ${FUT_CMAKE_DIR})
# 0.x: a newer minor version may break the API, so only the same
# major.minor counts as compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/futConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/futConfig.cmake
              ${PROJECT_BINARY_DIR}/futConfigVersion.cmake
        DESTINATION ${FUT_CMAKE_DIR})

set(CMAKE_DL_LIBS_FLAG "")
foreach(_lib ${CMAKE_DL_LIBS})
  string(APPEND CMAKE_DL_LIBS_FLAG " -l${_lib}")
endforeach()
configure_file(cmake/fut.pc.in ${PROJECT_BINARY_DIR}/fut.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/fut.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
