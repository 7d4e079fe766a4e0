# Sourced by the GPU-host scripts (gpu-check.sh, gpu-hopper-check.sh, gpu-dist-check.sh,
# gpu-study.sh): the libraries scripts/gpu-deps.sh put under .deps/usr (D, L for CMake's
# prefix and library paths), the training tests' corpus, and SM90_ONLY (below). The tests read Debian's dict-gcide,
# which the GPU host lacks: gpu-deps.sh carries a copy in .deps/corpus/, taken from there.
D=$PWD/.deps/usr
L=$D/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$L:${LD_LIBRARY_PATH:-}
if [[ ! -f /usr/share/dictd/gcide.dict.dz && -f $PWD/.deps/corpus/gcide.dict.dz ]]; then
  export SPARROW_TEST_CORPUS=$PWD/.deps/corpus/gcide.dict.dz
fi
# The GPU hosts are Hopper (sm_90): a build for sm_90a alone halves nvcc's time (CMake's cache entry
# SPARROW_CUDA_GENCODE; pass "$SM90_ONLY" to cmake).
SM90_ONLY=-DSPARROW_CUDA_GENCODE=-gencode=arch=compute_90a,code=sm_90a
