# Cross-compile for 64-bit Arm Linux (Jetson's CPU) with Debian/Ubuntu's g++-aarch64-linux-gnu.
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DORT_LIBRARY=<aarch64 libonnxruntime.so.1.x>
# scripts/aarch64_check.sh (make aarch64-check) does this and runs the results under qemu-user.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# Run try_run / test programs through qemu when it is there.
find_program(_qemu_aarch64 NAMES qemu-aarch64-static qemu-aarch64)
if(_qemu_aarch64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${_qemu_aarch64};-L;/usr/aarch64-linux-gnu")
endif()
