# Third-party discovery. LibTorch: any >= 2.7 (C++11 ABI) found through CMAKE_PREFIX_PATH,
# e.g. the PyPI wheel's torch.utils.cmake_prefix_path (scripts/setup.sh) or an official zip.
find_package(Threads REQUIRED)
find_package(nlohmann_json 3.9 REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(CLI11 REQUIRED)
# libcurl serves `data fetch` alone: a build without it (HOPELAB_CURL=OFF, e.g. scripts/gpu-check on
# a machine with no package registry) says so when asked to download.
option(HOPELAB_CURL "Build `data fetch` with libcurl" ON)
if(HOPELAB_CURL)
  find_package(CURL REQUIRED)
endif()
find_package(PkgConfig REQUIRED)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)

if(NOT HOPELAB_FUZZ)  # the fuzzing build is torch-free
# LibTorch. A CUDA build's TorchConfig.cmake needs a CUDA toolkit (nvcc) at configure time, which
# a CPU laptop lacks. Then the library is imported by hand (hl_import_torch_without_toolkit): the
# wheel's libtorch_cuda finds its CUDA runtime libraries in site-packages/nvidia through its own
# RPATH, so a GPU still works at run time; only our own .cu kernels need the toolkit to compile.
find_program(HL_NVCC nvcc HINTS /usr/local/cuda/bin)
option(HOPELAB_TORCH_WITHOUT_TOOLKIT "Import LibTorch without its CMake config (auto when nvcc is missing)" OFF)
if(HL_NVCC AND NOT DEFINED CUDAToolkit_ROOT)
  get_filename_component(_nvcc_bin "${HL_NVCC}" DIRECTORY)
  get_filename_component(CUDAToolkit_ROOT "${_nvcc_bin}" DIRECTORY)
  if(NOT DEFINED CMAKE_CUDA_COMPILER)
    set(CMAKE_CUDA_COMPILER "${HL_NVCC}")
  endif()
endif()
# No GPU probing at configure time (it try_runs a CUDA program, and fails under C++20 with CMake 3.25).
if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(TORCH_CUDA_ARCH_LIST "8.0;9.0")
endif()

# Locate TorchConfig.cmake ourselves to learn whether it is a CUDA build.
find_path(HL_TORCH_CONFIG_DIR TorchConfig.cmake PATH_SUFFIXES Torch share/cmake/Torch NO_DEFAULT_PATH
  PATHS ${CMAKE_PREFIX_PATH})
set(HL_TORCH_ROOT "")
if(HL_TORCH_CONFIG_DIR)
  get_filename_component(HL_TORCH_ROOT "${HL_TORCH_CONFIG_DIR}/../../.." ABSOLUTE)
endif()
if(HL_TORCH_ROOT AND EXISTS "${HL_TORCH_ROOT}/lib/libtorch_cuda.so" AND NOT HL_NVCC)
  set(HOPELAB_TORCH_WITHOUT_TOOLKIT ON)
endif()

if(HOPELAB_TORCH_WITHOUT_TOOLKIT)
  if(NOT HL_TORCH_ROOT)
    message(FATAL_ERROR "LibTorch not found: give its prefix in CMAKE_PREFIX_PATH (scripts/setup.sh does)")
  endif()
  include("${HL_TORCH_CONFIG_DIR}/TorchConfigVersion.cmake")
  set(Torch_VERSION "${PACKAGE_VERSION}")
  set(Torch_DIR "${HL_TORCH_CONFIG_DIR}")
  add_library(hl_torch INTERFACE)
  target_include_directories(hl_torch SYSTEM INTERFACE "${HL_TORCH_ROOT}/include"
    "${HL_TORCH_ROOT}/include/torch/csrc/api/include")
  set(_torch_libs "${HL_TORCH_ROOT}/lib/libtorch.so" "${HL_TORCH_ROOT}/lib/libtorch_cpu.so"
    "${HL_TORCH_ROOT}/lib/libc10.so")
  foreach(l torch_cuda c10_cuda)
    if(EXISTS "${HL_TORCH_ROOT}/lib/lib${l}.so")
      list(APPEND _torch_libs "${HL_TORCH_ROOT}/lib/lib${l}.so")
    endif()
  endforeach()
  # --no-as-needed: libtorch_cuda is used only through the hooks it registers when loaded.
  target_link_libraries(hl_torch INTERFACE "-Wl,--no-as-needed" ${_torch_libs} "-Wl,--as-needed"
    "-Wl,-rpath,${HL_TORCH_ROOT}/lib")
  set(TORCH_LIBRARIES hl_torch)
  message(STATUS "LibTorch ${Torch_VERSION} imported without its CMake config (no CUDA toolkit found)")
else()
  find_package(Torch REQUIRED)
endif()
if(Torch_VERSION VERSION_LESS 2.7)
  message(FATAL_ERROR "Hope Lab needs LibTorch >= 2.7 (C++11 ABI); found ${Torch_VERSION}")
endif()
message(STATUS "LibTorch ${Torch_VERSION} at ${Torch_DIR}")
# A pip wheel's CUDA libraries live beside torch in site-packages/nvidia/*/lib. Let the linker
# resolve libtorch_cuda's dependencies there, not against older copies under /usr/local/cuda
# (e.g. libnccl: undefined ncclCommResume).
get_filename_component(HL_SITE_PACKAGES "${Torch_DIR}/../../../.." ABSOLUTE)
file(GLOB HL_NVIDIA_LIB_DIRS LIST_DIRECTORIES true "${HL_SITE_PACKAGES}/nvidia/*/lib")
foreach(d IN LISTS HL_NVIDIA_LIB_DIRS)
  string(APPEND CMAKE_EXE_LINKER_FLAGS " -Wl,-rpath-link,${d}")
endforeach()
# Position-independent code everywhere, so the shared torch PCH also serves Qt test targets.
set(CMAKE_POSITION_INDEPENDENT_CODE ON)

endif()

find_package(benchmark QUIET)

if(HOPELAB_GUI OR HOPELAB_TESTS)
  find_package(Qt6 REQUIRED COMPONENTS Core Test)
endif()
if(HOPELAB_GUI)
  find_package(Qt6 REQUIRED COMPONENTS Gui Widgets Concurrent PrintSupport Svg)
  find_package(QCustomPlotQt6 REQUIRED)   # after Qt6: its config does not find Qt itself
endif()
