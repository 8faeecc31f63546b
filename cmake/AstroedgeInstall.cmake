# Install rules of the root CMakeLists.txt: the C SDK layout (default) or the wheel layout (SKBUILD).
# Kept here, not in runtime/ and plugins/, so that those stay plain builds their owners run directly.
#
#   SDK   <prefix>/include/astroedge.h
#         <prefix>/lib/libastroedge.so.1 (+ libastroedge.so link), rpath $ORIGIN
#         <prefix>/lib/libastroedge_ort.so [, libastroedge_ort_cuda.so, libastroedge_trt.so]
#         <prefix>/lib/libonnxruntime.so.1.x.y (+ .so.1 and .so links)   ASTROEDGE_INSTALL_ONNXRUNTIME
#         <prefix>/lib/cmake/astroedge/astroedgeConfig.cmake (+ Version)   find_package(astroedge)
#         <prefix>/lib/pkgconfig/astroedge.pc                               pkg-config astroedge
#         <prefix>/bin/ae_generate (the C sample), rpath $ORIGIN/../lib
#   wheel astroedge/lib/libastroedge.so.1, astroedge/lib/libastroedge_ort*.so, astroedge/include/astroedge.h,
#         and the Python subpackages that live outside astroedge/ (export/, runtime/python/).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# libastroedge's soname is libastroedge.so.1 (docs/c-api.md; AE_API_VERSION grows, the soname stays while the ABI only grows); set here only if runtime/ does not.
get_target_property(_ae_soversion astroedge SOVERSION)
if(NOT _ae_soversion)
  set_target_properties(astroedge PROPERTIES SOVERSION 1)
endif()

set(_ae_native_targets astroedge_ort)
foreach(t astroedge_ort_cuda astroedge_trt)
  if(TARGET ${t})
    list(APPEND _ae_native_targets ${t})
  endif()
endforeach()

if(SKBUILD)
  # onnxruntime's Python package ships libonnxruntime.so.1.x.y without the .so.1 link that
  # libastroedge's DT_NEEDED names: astroedge.native loads that file first (RTLD_GLOBAL), so no rpath to it.
  set_target_properties(astroedge ${_ae_native_targets} PROPERTIES INSTALL_RPATH "$ORIGIN" BUILD_WITH_INSTALL_RPATH ON)
  # Wheels hold no symbolic links: one copy of libastroedge, under its soname (what the loader asks for).
  install(FILES "$<TARGET_FILE:astroedge>" DESTINATION astroedge/lib RENAME "libastroedge.so.$<TARGET_PROPERTY:astroedge,SOVERSION>")
  install(TARGETS ${_ae_native_targets} LIBRARY DESTINATION astroedge/lib)
  install(FILES runtime/include/astroedge.h DESTINATION astroedge/include)
  # The pipeline's stages live in the top-level folders the client named; they install as subpackages.
  install(DIRECTORY export/ DESTINATION astroedge/export FILES_MATCHING PATTERN "*.py" PATTERN "__pycache__" EXCLUDE)
  install(DIRECTORY runtime/python/ DESTINATION astroedge/runtime FILES_MATCHING PATTERN "*.py" PATTERN "__pycache__" EXCLUDE)
  return()
endif()

set(_ae_libdir "${CMAKE_INSTALL_LIBDIR}")
set_target_properties(astroedge ${_ae_native_targets} PROPERTIES INSTALL_RPATH "$ORIGIN")
install(TARGETS astroedge LIBRARY DESTINATION ${_ae_libdir})
install(TARGETS ${_ae_native_targets} LIBRARY DESTINATION ${_ae_libdir})
install(FILES runtime/include/astroedge.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(TARGET ae_generate)
  set_target_properties(ae_generate PROPERTIES INSTALL_RPATH "$ORIGIN/../${_ae_libdir}")
  install(TARGETS ae_generate RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()

if(ASTROEDGE_INSTALL_ONNXRUNTIME)
  # The library libastroedge was linked against (ORT_LIBRARY, runtime/CMakeLists.txt), under its own
  # name plus the soname link the loader needs and the dev link a linker needs.
  get_filename_component(_ort_real "${ORT_LIBRARY}" REALPATH)
  get_filename_component(_ort_name "${_ort_real}" NAME)
  install(FILES "${_ort_real}" DESTINATION ${_ae_libdir})
  install(CODE "
    set(_d \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${_ae_libdir}\")
    if(NOT \"${_ort_name}\" STREQUAL \"libonnxruntime.so.1\")
      file(CREATE_LINK \"${_ort_name}\" \"\${_d}/libonnxruntime.so.1\" SYMBOLIC)
    endif()
    file(CREATE_LINK \"libonnxruntime.so.1\" \"\${_d}/libonnxruntime.so\" SYMBOLIC)")
endif()

# find_package(astroedge): an imported target astroedge::astroedge and the custom-op library's path.
set(_ae_cmakedir "${_ae_libdir}/cmake/astroedge")
configure_package_config_file(cmake/astroedgeConfig.cmake.in "${CMAKE_BINARY_DIR}/astroedgeConfig.cmake"
  INSTALL_DESTINATION ${_ae_cmakedir} PATH_VARS CMAKE_INSTALL_INCLUDEDIR _ae_libdir)
write_basic_package_version_file("${CMAKE_BINARY_DIR}/astroedgeConfigVersion.cmake" COMPATIBILITY SameMajorVersion)
install(FILES "${CMAKE_BINARY_DIR}/astroedgeConfig.cmake" "${CMAKE_BINARY_DIR}/astroedgeConfigVersion.cmake"
  DESTINATION ${_ae_cmakedir})

# pkg-config: relocatable through ${pcfiledir}.
configure_file(cmake/astroedge.pc.in "${CMAKE_BINARY_DIR}/astroedge.pc" @ONLY)
install(FILES "${CMAKE_BINARY_DIR}/astroedge.pc" DESTINATION ${_ae_libdir}/pkgconfig)
