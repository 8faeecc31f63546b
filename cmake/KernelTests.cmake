# The C kernel tests (tests/kernels/<op>_cpu_test.cc) as plain executables against the kernel
# libraries <op>_kernels_cpu, for builds that cannot run the sanitizer drivers of plugins/ (a cross
# build run under qemu-user: make aarch64-check). Off by default; -DASTROEDGE_KERNEL_TESTS=ON.
option(ASTROEDGE_KERNEL_TESTS "Build tests/kernels/*_cpu_test.cc against the kernel libraries" OFF)
if(ASTROEDGE_KERNEL_TESTS)
  file(GLOB _ae_kernel_tests "${CMAKE_CURRENT_SOURCE_DIR}/tests/kernels/*_cpu_test.cc")
  foreach(src IN LISTS _ae_kernel_tests)
    get_filename_component(name "${src}" NAME_WE)
    string(REGEX REPLACE "_cpu_test$" "" op "${name}")
    if(TARGET ${op}_kernels_cpu)
      add_executable(${name} "${src}")
      target_link_libraries(${name} PRIVATE ${op}_kernels_cpu)
      # headers every kernel and its test may use (half_bits.h), as plugins/CMakeLists.txt gives the sanitizer drivers
      target_include_directories(${name} PRIVATE "${CMAKE_CURRENT_SOURCE_DIR}/plugins/common")
      target_compile_options(${name} PRIVATE -Wall -Wextra -O2 -fopenmp-simd -fno-trapping-math)
      set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY "${CMAKE_BINARY_DIR}/kernel_tests")
    else()
      message(STATUS "astroedge: ${name}.cc skipped: no target ${op}_kernels_cpu")
    endif()
  endforeach()
endif()
