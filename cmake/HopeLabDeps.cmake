# Third-party discovery. LibTorch: any >= 2.7 (C++11 ABI) found through CMAKE_PREFIX_PATH,
# e.g. the PyPI wheel's torch.utils.cmake_prefix_path (scripts/setup.sh) or an official zip.
find_package(Threads REQUIRED)
find_package(nlohmann_json 3.9 REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(CURL REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)

# The CUDA wheels' TorchConfig looks for a CUDA toolkit; point it at the system one when present.
if(EXISTS /usr/local/cuda/bin/nvcc AND NOT DEFINED CUDAToolkit_ROOT)
  set(CUDAToolkit_ROOT /usr/local/cuda)
  if(NOT DEFINED CMAKE_CUDA_COMPILER)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
endif()
# No GPU probing at configure time (it try_runs a CUDA program, and fails under C++20 with CMake 3.25).
if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
  set(TORCH_CUDA_ARCH_LIST "8.0;9.0")
endif()
find_package(Torch REQUIRED)
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

find_package(benchmark QUIET)

if(HOPELAB_GUI OR HOPELAB_TESTS)
  find_package(Qt6 REQUIRED COMPONENTS Core Test)
endif()
if(HOPELAB_GUI)
  find_package(Qt6 REQUIRED COMPONENTS Gui Widgets Concurrent PrintSupport Svg)
  find_package(QCustomPlotQt6 REQUIRED)   # after Qt6: its config does not find Qt itself
endif()
