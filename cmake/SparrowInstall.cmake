# `cmake --install` → a relocatable CMake package (included at the end of CMakeLists.txt):
#
#   <prefix>/bin/                      the programs (train, attention_layout, plot, bench_*, ...)
#   <prefix>/include/{framework,attention,models,train}/...   headers, in the source layout
#   <prefix>/lib/libsparrow_*.a        the four static libraries
#   <prefix>/lib/cmake/Sparrow/        SparrowConfig.cmake, SparrowConfigVersion.cmake, SparrowTargets*.cmake
#
# A consumer writes
#   find_package(Sparrow 0.1 REQUIRED)
#   target_link_libraries(app PRIVATE Sparrow::train)   # or ::models, ::attention, ::framework
# and gets the include folder, C++20, and the dependencies (Eigen, OpenMP, nlohmann_json, yaml-cpp,
# zlib; MPI, and CUDA/cuBLASLt/cuDNN/NCCL where this build had them), found again on the
# consumer's machine by SparrowConfig.cmake (find_dependency). Nothing in the installed files
# names a build or source path: paths are relative to the package folder, and external
# libraries found by absolute path here (cuDNN, NCCL) are found again there as imported targets.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(SPARROW_PACKAGE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Sparrow)
if(NOT SPARROW_PACKAGE_WITH_NCCL)  # set ON in CMakeLists.txt where the build links NCCL
  set(SPARROW_PACKAGE_WITH_NCCL OFF)
endif()
set(SPARROW_EXPORTED_LIBRARIES sparrow_framework sparrow_attention sparrow_models sparrow_train)

foreach(lib ${SPARROW_EXPORTED_LIBRARIES})
  string(REGEX REPLACE "^sparrow_" "" short ${lib})
  set_target_properties(${lib} PROPERTIES EXPORT_NAME ${short})
  add_library(Sparrow::${short} ALIAS ${lib})  # the same names inside this build
endforeach()
# Consumers compile Sparrow's headers as C++20.
target_compile_features(sparrow_framework PUBLIC cxx_std_20)
# The libraries were built with -march=native (SPARROW_NATIVE): Eigen code compiled with other
# vector flags in the consumer would break the one-definition rule (see CMakeLists.txt), and the
# libraries only run on such a CPU anyway. Inside this build the flag is already global.
if(SPARROW_NATIVE)
  target_compile_options(sparrow_framework INTERFACE $<INSTALL_INTERFACE:$<$<COMPILE_LANGUAGE:CXX>:-march=native>>)
endif()

install(TARGETS ${SPARROW_EXPORTED_LIBRARIES}
        EXPORT SparrowTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})  # include folder: INSTALL_INTERFACE in CMakeLists.txt
install(EXPORT SparrowTargets NAMESPACE Sparrow:: DESTINATION ${SPARROW_PACKAGE_DIR})

# Headers: every .h/.cuh of the four library folders, at the same relative path (sources include
# "framework/core/tensor.h"). Tools' and programs' folders hold no headers anyone includes.
foreach(dir framework attention models train)
  install(DIRECTORY ${CMAKE_SOURCE_DIR}/${dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/${dir}
          FILES_MATCHING PATTERN "*.h" PATTERN "*.cuh")
endforeach()

# Programs: every *_main.cpp target of CMakeLists.txt (SPARROW_PROGRAMS).
install(TARGETS ${SPARROW_PROGRAMS} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/SparrowConfig.cmake.in
                              ${CMAKE_BINARY_DIR}/SparrowConfig.cmake
                              INSTALL_DESTINATION ${SPARROW_PACKAGE_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/SparrowConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_BINARY_DIR}/SparrowConfig.cmake ${CMAKE_BINARY_DIR}/SparrowConfigVersion.cmake
        DESTINATION ${SPARROW_PACKAGE_DIR})
