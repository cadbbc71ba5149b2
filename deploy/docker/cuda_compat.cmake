# Included right after project() in the GPU image's configure step
# (-DCMAKE_PROJECT_internimage_serving_INCLUDE=deploy/docker/cuda_compat.cmake).
#
# CUDA 12.8 no longer ships the nvToolsExt library, while the CMake package of some LibTorch 2.x
# releases still links the CUDA::nvToolsExt target. An empty imported target satisfies that link
# when the toolkit lacks it; LibTorch itself only needs the header-only NVTX 3 at run time.
find_package(CUDAToolkit QUIET)
if(CUDAToolkit_FOUND AND NOT TARGET CUDA::nvToolsExt)
  add_library(CUDA::nvToolsExt INTERFACE IMPORTED)
endif()
