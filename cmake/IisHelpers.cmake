# Build helpers shared by every component. See docs/architecture.md for the target graph.

# iis_warnings(<target>): the project's warning set, applied to our own sources only
# (dependency headers come in as SYSTEM includes through imported targets).
function(iis_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter>)
  if(IIS_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${IIS_SANITIZE} -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=${IIS_SANITIZE})
  endif()
endfunction()

# iis_multiarch_sources(<target> SOURCES <file>... [DEFINITIONS <def>...])
# Compiles each source once per x86-64 ISA level and adds the objects to <target>:
#   avx512 (-mavx512f/bw/vl/dq + FMA), avx2 (-mavx2 + FMA) and baseline (the default target).
# Each compile defines IIS_ISA_NAMESPACE to isa_avx512 / isa_avx2 / isa_baseline; the source puts
# its kernels in that namespace and a dispatcher picks one at run time (iis::ops::cpu::BestIsa()).
# On other architectures only the baseline variant is built. The sources must not include
# LibTorch headers: they are compiled three times.
function(iis_multiarch_sources target)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEFINITIONS" ${ARGN})
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64")
    set(levels avx512 avx2 baseline)
  else()
    set(levels baseline)
  endif()
  set(flags_avx512 -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx2 -mfma -mf16c -mbmi2)
  set(flags_avx2 -mavx2 -mfma -mf16c -mbmi2)
  set(flags_baseline "")
  foreach(level IN LISTS levels)
    set(obj ${target}_isa_${level})
    add_library(${obj} OBJECT ${ARG_SOURCES})
    target_compile_definitions(${obj} PRIVATE IIS_ISA_NAMESPACE=isa_${level} IIS_ISA_${level}=1
                                              ${ARG_DEFINITIONS})
    target_compile_options(${obj} PRIVATE ${flags_${level}} -O3 -fno-math-errno)
    target_include_directories(${obj} PRIVATE ${PROJECT_SOURCE_DIR})
    iis_warnings(${obj})
    target_sources(${target} PRIVATE $<TARGET_OBJECTS:${obj}>)
    target_compile_definitions(${target} PRIVATE IIS_HAVE_ISA_${level}=1)
  endforeach()
endfunction()

# iis_add_test(<name> SOURCES <file>... LIBS <lib>... [LABELS <label>...] [TIMEOUT <s>]
#              [SINGLE_PROCESS])
# A GoogleTest binary in build/tests, each test case registered with CTest at test time
# (PRE_TEST discovery, so building never runs LibTorch code). SINGLE_PROCESS registers the whole
# binary as one CTest test instead: for suites that share an expensive fixture (a server process
# loading models) across their cases.
function(iis_add_test name)
  cmake_parse_arguments(ARG "SINGLE_PROCESS" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gtest_main GTest::gmock)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  iis_warnings(${name})
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  # Paths the tests read through tests/testing/paths.h (compiled in: a ';' separated ENVIRONMENT
  # list does not survive gtest_discover_tests' PROPERTIES forwarding).
  target_compile_definitions(${name} PRIVATE IIS_TEST_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
                                             IIS_TEST_BINARY_DIR="${CMAKE_BINARY_DIR}")
  if(ARG_SINGLE_PROCESS)
    add_test(NAME ${name} COMMAND ${name} WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
    set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT})
    return()
  endif()
  gtest_discover_tests(${name}
    DISCOVERY_MODE PRE_TEST
    DISCOVERY_TIMEOUT 60
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
    PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT})
endfunction()

# iis_setup_cuda(): enables the CUDA language when IIS_CUDA allows it and nvcc is found
# (on these machines at /usr/local/cuda). Sets IIS_CUDA_ENABLED.
macro(iis_setup_cuda)
  set(IIS_CUDA_ENABLED OFF)
  if(NOT IIS_CUDA STREQUAL "OFF")
    if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
      set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
    endif()
    include(CheckLanguage)
    check_language(CUDA)
    if(CMAKE_CUDA_COMPILER)
      if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
        # A100 and H100 (the data-centre parts we deploy on).
        set(CMAKE_CUDA_ARCHITECTURES 80 90)
      endif()
      enable_language(CUDA)
      set(CMAKE_CUDA_STANDARD 17)
      set(CMAKE_CUDA_STANDARD_REQUIRED ON)
      set(IIS_CUDA_ENABLED ON)
    elseif(IIS_CUDA STREQUAL "ON")
      message(FATAL_ERROR "IIS_CUDA=ON but no CUDA compiler was found")
    endif()
  endif()
endmacro()
