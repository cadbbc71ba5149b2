# Finding LibTorch: Debian's LibTorch 1.13 (CPU), a LibTorch archive (/opt/libtorch) or the torch/
# directory of a PyTorch wheel (torch.utils.cmake_prefix_path), with or without CUDA. See
# iis_find_torch() below; scripts/lib/libtorch-build.sh configures the project this way.

# _iis_torch_root(<out>): the LibTorch prefix that Torch_DIR or a CMAKE_PREFIX_PATH entry (the
# variable, then the environment) points at: <prefix> holds share/cmake/Torch/TorchConfig.cmake.
# Empty when none does (e.g. Debian's LibTorch, which CMake finds by itself).
function(_iis_torch_root out)
  set(root "")
  if(Torch_DIR AND EXISTS "${Torch_DIR}/TorchConfig.cmake")
    get_filename_component(root "${Torch_DIR}/../../.." ABSOLUTE)
  else()
    set(env_prefixes "$ENV{CMAKE_PREFIX_PATH}")
    string(REPLACE ":" ";" env_prefixes "${env_prefixes}")
    foreach(prefix IN LISTS CMAKE_PREFIX_PATH env_prefixes)
      if(EXISTS "${prefix}/share/cmake/Torch/TorchConfig.cmake")      # /opt/libtorch, torch/
        get_filename_component(root "${prefix}" ABSOLUTE)
      elseif(EXISTS "${prefix}/Torch/TorchConfig.cmake")              # torch/share/cmake
        get_filename_component(root "${prefix}/../.." ABSOLUTE)
      endif()
      if(root)
        break()
      endif()
    endforeach()
  endif()
  # A system prefix (/usr, /usr/local) needs no help and must not be searched ahead of others.
  if(root IN_LIST CMAKE_SYSTEM_PREFIX_PATH)
    set(root "")
  endif()
  set(${out} "${root}" PARENT_SCOPE)
endfunction()

# _iis_torch_arch_list(<out>): TORCH_CUDA_ARCH_LIST spelling ("8.0;9.0") of
# CMAKE_CUDA_ARCHITECTURES ("80;90", "90a", "80-real"); empty for values it cannot translate
# ("all", "native").
function(_iis_torch_arch_list out)
  set(list "")
  foreach(arch IN LISTS CMAKE_CUDA_ARCHITECTURES)
    if(NOT arch MATCHES "^([0-9]+)([0-9])([a-z]?)(-real|-virtual)?$")
      set(list "")
      break()
    endif()
    list(APPEND list "${CMAKE_MATCH_1}.${CMAKE_MATCH_2}${CMAKE_MATCH_3}")
  endforeach()
  set(${out} "${list}" PARENT_SCOPE)
endfunction()

# _iis_torch_header_view(): a wheel's or archive's <prefix>/include also holds the third-party
# headers LibTorch was built with (google/protobuf 3.13, oneapi/dnnl 3.x, fmt, pybind11, ...):
# searched ahead of /usr/include, they would replace the headers of the libraries we link (Debian's
# protobuf, oneDNN) and compile against the wrong versions. The LibTorch targets' include
# directories are pointed instead at <build>/_iis_torch_include, which links LibTorch's own header
# trees (ATen, c10, caffe2, torch, TH*) only. Nothing changes for a LibTorch in a system include
# directory (Debian's /usr/include: its headers are the system's anyway).
function(_iis_torch_header_view)
  set(include_dir "${TORCH_INSTALL_PREFIX}/include")
  if(NOT IS_DIRECTORY "${include_dir}/ATen" OR
     include_dir IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
    return()
  endif()
  # oneDNN's headers there: libtorch_cpu has that oneDNN built in, and exports instantiations of
  # its internals that another libdnnl in the process would bind to (measured: Debian's oneDNN 2.6
  # beside the 2.11 wheel's 3.10 fails every matmul with "could not execute a primitive").
  if(EXISTS "${include_dir}/oneapi/dnnl/dnnl.hpp")
    set(IIS_TORCH_BUNDLES_ONEDNN ON PARENT_SCOPE)
  endif()
  set(view "${CMAKE_BINARY_DIR}/_iis_torch_include")
  file(REMOVE_RECURSE "${view}")
  file(MAKE_DIRECTORY "${view}")
  foreach(tree IN ITEMS ATen c10 caffe2 torch TH THC THCUNN THNN)
    if(IS_DIRECTORY "${include_dir}/${tree}")
      file(CREATE_LINK "${include_dir}/${tree}" "${view}/${tree}" SYMBOLIC)
    endif()
  endforeach()
  get_directory_property(targets IMPORTED_TARGETS)
  foreach(target IN LISTS targets)
    foreach(property IN ITEMS INTERFACE_INCLUDE_DIRECTORIES INTERFACE_SYSTEM_INCLUDE_DIRECTORIES)
      get_target_property(dirs ${target} ${property})
      string(FIND "${dirs}" "${include_dir}" at)
      if(dirs AND at GREATER_EQUAL 0)
        string(REPLACE "${include_dir}" "${view}" dirs "${dirs}")
        set_target_properties(${target} PROPERTIES ${property} "${dirs}")
      endif()
    endforeach()
  endforeach()
endfunction()

# iis_torch_search_paths(): sets Torch_ROOT (unless given) to the LibTorch prefix that Torch_DIR or
# CMAKE_PREFIX_PATH points at, and leaves that prefix itself out of CMAKE_PREFIX_PATH (torch/
# next to torch/share/cmake, an old recipe for wheels): searched by other packages, it would make
# find_package(Protobuf) and the oneDNN search find the copies bundled there (torch/include/google,
# torch/bin/protoc, torch/include/oneapi). Call it before finding anything else; iis_find_torch()
# calls it too (a second call changes nothing).
macro(iis_torch_search_paths)
  if(NOT DEFINED Torch_ROOT AND NOT DEFINED ENV{Torch_ROOT})
    _iis_torch_root(_iis_derived_root)
    if(_iis_derived_root)
      set(Torch_ROOT "${_iis_derived_root}")
    endif()
  endif()
  set(_iis_search_root "${Torch_ROOT}")
  if(NOT _iis_search_root)
    set(_iis_search_root "$ENV{Torch_ROOT}")
  endif()
  if(_iis_search_root)
    get_filename_component(_iis_search_root "${_iis_search_root}" REALPATH)
    set(_iis_kept_prefixes "")
    set(_iis_dropped_prefix "")
    foreach(_iis_entry IN LISTS CMAKE_PREFIX_PATH)
      get_filename_component(_iis_entry_real "${_iis_entry}" REALPATH)
      if(_iis_entry_real STREQUAL _iis_search_root)
        set(_iis_dropped_prefix "${_iis_entry}")
      else()
        list(APPEND _iis_kept_prefixes "${_iis_entry}")
      endif()
    endforeach()
    if(_iis_dropped_prefix)
      set(CMAKE_PREFIX_PATH "${_iis_kept_prefixes}")
      message(STATUS "internimage-serving: ${_iis_dropped_prefix} left out of CMAKE_PREFIX_PATH "
                     "(LibTorch is found through Torch_ROOT; the third-party packages bundled "
                     "there are not the ones we link)")
    endif()
  endif()
endmacro()

# iis_find_torch(): finds LibTorch, enables CUDA (iis_setup_cuda) and defines
#   iis::torch            LibTorch with its compile flags and the OpenMP runtime (see below)
#   IIS_TORCH_HAS_CUDA    ON when LibTorch was built with CUDA
#   IIS_TORCH_VERSION     Torch_VERSION ("1.13.0", "2.11.0")
#   IIS_TORCH_BUNDLES_ONEDNN  ON when LibTorch has its own oneDNN built in (see below)
#   TORCH_INSTALL_PREFIX  from LibTorch's package
# without a warning from LibTorch's CMake package, whichever LibTorch it is:
#   - LibTorch's package finds c10, torch and kineto with find_library(... PATHS <prefix>/lib),
#     which searches the system directories first: with a wheel on a machine that also has
#     Debian's LibTorch, Debian's libc10.so would be linked. Torch_ROOT (iis_torch_search_paths)
#     makes those searches start in the LibTorch prefix; only there, so other packages (protobuf,
#     oneDNN) are not found in a wheel's bundled copies. A library found outside the prefix anyway
#     is a fatal error.
#   - A wheel's package defines protobuf::libprotobuf as an empty target unless that target
#     exists: find Protobuf before calling this (the top-level CMakeLists.txt does), or targets
#     linking protobuf::libprotobuf link nothing.
#   - Wheels link kineto into libtorch_cpu and ship no libkineto, which the package warns about:
#     when the prefix has none, kineto_LIBRARY is an always-empty generator expression.
#   - With CUDA, the package enables the CUDA language itself, warns about and disables
#     CMAKE_CUDA_ARCHITECTURES and appends arch flags for TORCH_CUDA_ARCH_LIST (or for every GPU
#     it knows) to CMAKE_CUDA_FLAGS. Our kernels include no LibTorch header and keep our
#     architectures: CUDA is enabled before, CMAKE_CUDA_ARCHITECTURES is hidden from the package
#     and restored after, and CMAKE_CUDA_FLAGS is restored. TORCH_CUDA_ARCH_LIST (what the package
#     computes its own flags from) is set from CMAKE_CUDA_ARCHITECTURES unless given (variable or
#     environment), which also skips its GPU detection.
#   - A wheel's or archive's include directory bundles third-party headers: LibTorch's targets
#     see only LibTorch's own header trees (_iis_torch_header_view above). IIS_TORCH_BUNDLES_ONEDNN
#     is ON when LibTorch has its own oneDNN built in: nothing else may link another oneDNN.
#   - Some LibTorch 2.x packages link CUDA::nvToolsExt, which CUDA >= 12.9 no longer ships: an empty
#     stand-in is defined when the toolkit lacks it.
#   - OpenMP: code that includes LibTorch's headers is compiled with OpenMP (at::parallel_for is a
#     pragma there). When LibTorch ships its own libgomp (wheels do), we link that one, so a single
#     OpenMP runtime is loaded and CMake can order the runtime path (no "cannot generate a safe
#     runtime search path" warning); otherwise the compiler's.
macro(iis_find_torch)
  iis_torch_search_paths()
  iis_setup_cuda()

  # _iis_search_root: the LibTorch prefix that iis_torch_search_paths() resolved (empty for a
  # LibTorch CMake finds by itself).
  if(_iis_search_root AND NOT DEFINED kineto_LIBRARY)
    file(GLOB _iis_kineto "${_iis_search_root}/lib/libkineto*")
    if(NOT _iis_kineto)
      set(kineto_LIBRARY "$<0:kineto>")  # true for if(), links nothing
    endif()
  endif()

  if(IIS_CUDA_ENABLED)
    if(NOT DEFINED TORCH_CUDA_ARCH_LIST AND NOT DEFINED ENV{TORCH_CUDA_ARCH_LIST})
      _iis_torch_arch_list(_iis_arch_list)
      if(_iis_arch_list)
        set(TORCH_CUDA_ARCH_LIST "${_iis_arch_list}")
      endif()
    endif()
    if(NOT TARGET CUDA::nvToolsExt AND CMAKE_CUDA_COMPILER_TOOLKIT_ROOT)
      file(GLOB _iis_nvtx "${CMAKE_CUDA_COMPILER_TOOLKIT_ROOT}/lib*/libnvToolsExt*"
                          "${CMAKE_CUDA_COMPILER_TOOLKIT_ROOT}/targets/*/lib/libnvToolsExt*")
      if(NOT _iis_nvtx)
        add_library(CUDA::nvToolsExt INTERFACE IMPORTED)
      endif()
    endif()
  endif()
  set(_iis_cuda_flags_defined OFF)
  if(DEFINED CMAKE_CUDA_FLAGS)
    set(_iis_cuda_flags_defined ON)
    set(_iis_cuda_flags "${CMAKE_CUDA_FLAGS}")
  endif()
  set(_iis_cuda_archs_defined OFF)
  if(DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(_iis_cuda_archs_defined ON)
    set(_iis_cuda_archs "${CMAKE_CUDA_ARCHITECTURES}")
    get_property(_iis_cuda_archs_cached CACHE CMAKE_CUDA_ARCHITECTURES PROPERTY VALUE SET)
    unset(CMAKE_CUDA_ARCHITECTURES)
    unset(CMAKE_CUDA_ARCHITECTURES CACHE)
  endif()

  find_package(Torch REQUIRED)

  if(_iis_cuda_archs_defined)
    if(_iis_cuda_archs_cached)
      set(CMAKE_CUDA_ARCHITECTURES "${_iis_cuda_archs}" CACHE STRING "CUDA architectures" FORCE)
    endif()
    set(CMAKE_CUDA_ARCHITECTURES "${_iis_cuda_archs}")
  else()
    unset(CMAKE_CUDA_ARCHITECTURES)
  endif()
  if(_iis_cuda_flags_defined)
    set(CMAKE_CUDA_FLAGS "${_iis_cuda_flags}")
  else()
    unset(CMAKE_CUDA_FLAGS)
  endif()

  set(IIS_TORCH_VERSION "${Torch_VERSION}")
  foreach(_iis_lib IN ITEMS TORCH_LIBRARY c10_LIBRARY C10_CUDA_LIBRARY)
    if(${_iis_lib})
      get_filename_component(_iis_real "${${_iis_lib}}" REALPATH)
      get_filename_component(_iis_prefix "${TORCH_INSTALL_PREFIX}" REALPATH)
      string(FIND "${_iis_real}" "${_iis_prefix}/" _iis_at)
      if(NOT _iis_at EQUAL 0)
        message(FATAL_ERROR "LibTorch in ${TORCH_INSTALL_PREFIX}: ${_iis_lib} was found outside "
                            "it (${${_iis_lib}}). Set Torch_ROOT to that LibTorch prefix and "
                            "configure a fresh build directory.")
      endif()
    endif()
  endforeach()

  _iis_torch_header_view()

  if(TARGET torch_cuda OR TARGET c10_cuda OR TORCH_CUDA_LIBRARIES)
    set(IIS_TORCH_HAS_CUDA ON)
  else()
    set(IIS_TORCH_HAS_CUDA OFF)
  endif()

  # OpenMP: the LibTorch's own runtime when it ships one outside the compiler's directories.
  find_package(OpenMP REQUIRED COMPONENTS CXX)
  set(_iis_gomp "")
  set(_iis_torch_lib_dir "")
  if(c10_LIBRARY)
    get_filename_component(_iis_torch_lib_dir "${c10_LIBRARY}" DIRECTORY)
    if(NOT _iis_torch_lib_dir IN_LIST CMAKE_CXX_IMPLICIT_LINK_DIRECTORIES)
      file(GLOB _iis_gomp "${_iis_torch_lib_dir}/libgomp*.so*")
      if(_iis_gomp)
        list(SORT _iis_gomp)
        list(GET _iis_gomp 0 _iis_gomp)
      endif()
    endif()
  endif()
  add_library(iis_torch INTERFACE)
  if(_iis_torch_lib_dir AND NOT _iis_torch_lib_dir IN_LIST CMAKE_CXX_IMPLICIT_LINK_DIRECTORIES)
    # A wheel's libtorch.so carries parts of a newer libstdc++ linked in statically
    # (std::filesystem, ...) and exports them. Loaded ahead of libstdc++.so.6, it would lend them
    # to our code too (seen: std::filesystem::remove_all jumping to address 0). Needing the
    # system's C++ library before LibTorch keeps it first in the process's symbol lookup order.
    target_link_libraries(iis_torch INTERFACE "-Wl,--push-state,--no-as-needed" stdc++
                                              "-Wl,--pop-state")
  endif()
  if(_iis_gomp)
    target_compile_options(iis_torch INTERFACE $<$<COMPILE_LANGUAGE:CXX>:${OpenMP_CXX_FLAGS}>)
    target_link_libraries(iis_torch INTERFACE ${TORCH_LIBRARIES} "${_iis_gomp}" Threads::Threads)
    set(IIS_OPENMP_RUNTIME "${_iis_gomp}")
  else()
    target_link_libraries(iis_torch INTERFACE ${TORCH_LIBRARIES} OpenMP::OpenMP_CXX)
    set(IIS_OPENMP_RUNTIME "${OpenMP_CXX_LIBRARIES}")
  endif()
  # LibTorch's own flags (the C++ ABI define) apply to everything that includes its headers.
  separate_arguments(_iis_torch_cxx_flags UNIX_COMMAND "${TORCH_CXX_FLAGS}")
  target_compile_options(iis_torch INTERFACE ${_iis_torch_cxx_flags})
  add_library(iis::torch ALIAS iis_torch)
  message(STATUS "internimage-serving: LibTorch ${IIS_TORCH_VERSION} in ${TORCH_INSTALL_PREFIX}, "
                 "OpenMP runtime ${IIS_OPENMP_RUNTIME}")
endmacro()
