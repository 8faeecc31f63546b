# ONNX Runtime C/C++ headers for the AMSU custom-op library and libastroedge: the one place that
# finds or fetches them (never vendored). Order:
#   1. -DONNXRUNTIME_ROOT=<prefix> (an ORT release tarball, or a Jetson's onnxruntime-gpu build):
#      <prefix>/include or <prefix>/include/onnxruntime;
#   2. an installed ORT (find_path in the system prefixes, e.g. Debian/Ubuntu's libonnxruntime-dev);
#   3. Debian's libonnxruntime-dev .deb, downloaded by URL with a pinned sha256 and unpacked by CMake
#      itself (libarchive reads .deb): no apt, no keyring, so it works on Debian, Ubuntu and JetPack.
#      The package is architecture-specific only in name; the headers are the same for every CPU.
#
# include() it and call astroedge_onnxruntime_headers(<var>), or run it as a script:
#   cmake -DDEPS_DIR=<dir> -P cmake/OnnxRuntimeHeaders.cmake      (prints the include folder)
# The Makefile's `ort-headers` target does the latter through plugins/scripts/get_ort_headers.sh.

set(ASTROEDGE_ORT_DEB_VERSION "1.23.2+dfsg-6.1")
set(ASTROEDGE_ORT_DEB_URL
    "http://deb.debian.org/debian/pool/main/o/onnxruntime/libonnxruntime-dev_${ASTROEDGE_ORT_DEB_VERSION}_amd64.deb")
set(ASTROEDGE_ORT_DEB_SHA256 "4630a94adb36dc056feb124e51c6e952e2cab5188bc093a25bee8a7e1ac5196d")
# snapshot.debian.org keeps every file ever published (by its sha1): the pool drops superseded versions.
set(ASTROEDGE_ORT_DEB_MIRRORS "${ASTROEDGE_ORT_DEB_URL}"
    "https://snapshot.debian.org/file/5c8210842c57b42522262c9022f35b359c81f5b0")

# Download and unpack the headers into <deps_dir>/onnxruntime/usr/include/onnxruntime (idempotent).
function(astroedge_fetch_onnxruntime_headers deps_dir out_var)
  set(dest "${deps_dir}/onnxruntime")
  set(include "${dest}/usr/include/onnxruntime")
  if(EXISTS "${include}/onnxruntime_lite_custom_op.h")
    set(${out_var} "${include}" PARENT_SCOPE)
    return()
  endif()
  set(deb "${deps_dir}/libonnxruntime-dev_${ASTROEDGE_ORT_DEB_VERSION}_amd64.deb")
  if(NOT EXISTS "${deb}")
    set(errors "")
    foreach(url IN LISTS ASTROEDGE_ORT_DEB_MIRRORS)
      message(STATUS "astroedge: fetching the ONNX Runtime headers from ${url}")
      file(DOWNLOAD "${url}" "${deb}.part" EXPECTED_HASH SHA256=${ASTROEDGE_ORT_DEB_SHA256} STATUS st TIMEOUT 120)
      list(GET st 0 code)
      if(code EQUAL 0)
        file(RENAME "${deb}.part" "${deb}")
        break()
      endif()
      list(GET st 1 why)
      string(APPEND errors "\n  ${url}: ${why}")
      file(REMOVE "${deb}.part")
    endforeach()
    if(NOT EXISTS "${deb}")
      message(FATAL_ERROR "cannot download the ONNX Runtime headers:${errors}\n"
                          "Give an ONNX Runtime install with -DONNXRUNTIME_ROOT=<prefix> (its include/ folder) instead.")
    endif()
  endif()
  # Unpack in a temporary folder, move into place last: an interrupted run leaves no half tree.
  string(RANDOM LENGTH 8 tag)
  set(tmp "${deps_dir}/.onnxruntime-${tag}")
  file(MAKE_DIRECTORY "${tmp}/deb")
  file(ARCHIVE_EXTRACT INPUT "${deb}" DESTINATION "${tmp}/deb")
  file(GLOB data "${tmp}/deb/data.tar.*")
  file(ARCHIVE_EXTRACT INPUT "${data}" DESTINATION "${tmp}/root" PATTERNS usr/include)
  if(NOT EXISTS "${tmp}/root/usr/include/onnxruntime/onnxruntime_lite_custom_op.h")
    file(REMOVE_RECURSE "${tmp}")
    message(FATAL_ERROR "${deb} has no usr/include/onnxruntime/onnxruntime_lite_custom_op.h")
  endif()
  file(REMOVE_RECURSE "${dest}")
  file(RENAME "${tmp}/root" "${dest}")
  file(REMOVE_RECURSE "${tmp}")
  set(${out_var} "${include}" PARENT_SCOPE)
endfunction()

# The include folder holding onnxruntime_c_api.h and onnxruntime_lite_custom_op.h, by the order above.
function(astroedge_onnxruntime_headers out_var deps_dir)
  if(ONNXRUNTIME_ROOT)
    find_path(_ae_ort_inc onnxruntime_lite_custom_op.h PATHS "${ONNXRUNTIME_ROOT}/include" PATH_SUFFIXES onnxruntime
              NO_DEFAULT_PATH NO_CACHE)
    if(NOT _ae_ort_inc)
      message(FATAL_ERROR "ONNXRUNTIME_ROOT=${ONNXRUNTIME_ROOT} has no include/onnxruntime_lite_custom_op.h "
                          "(nor include/onnxruntime/...); point it at an ONNX Runtime install prefix")
    endif()
    message(STATUS "astroedge: ONNX Runtime headers from ONNXRUNTIME_ROOT: ${_ae_ort_inc}")
  else()
    find_path(_ae_ort_inc onnxruntime_lite_custom_op.h PATH_SUFFIXES onnxruntime NO_CACHE)
    if(_ae_ort_inc)
      message(STATUS "astroedge: ONNX Runtime headers installed on this system: ${_ae_ort_inc}")
    else()
      astroedge_fetch_onnxruntime_headers("${deps_dir}" _ae_ort_inc)
      message(STATUS "astroedge: ONNX Runtime headers ${ASTROEDGE_ORT_DEB_VERSION} (Debian's libonnxruntime-dev): ${_ae_ort_inc}")
    endif()
  endif()
  set(${out_var} "${_ae_ort_inc}" PARENT_SCOPE)
endfunction()

if(CMAKE_SCRIPT_MODE_FILE STREQUAL CMAKE_CURRENT_LIST_FILE)
  if(NOT DEPS_DIR)
    message(FATAL_ERROR "usage: cmake -DDEPS_DIR=<dir> -P ${CMAKE_CURRENT_LIST_FILE}")
  endif()
  file(MAKE_DIRECTORY "${DEPS_DIR}")
  astroedge_fetch_onnxruntime_headers("${DEPS_DIR}" inc)
  execute_process(COMMAND "${CMAKE_COMMAND}" -E echo "${inc}")
endif()
