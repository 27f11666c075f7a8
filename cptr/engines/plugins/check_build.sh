#!/usr/bin/env bash
# Compile checks for the CPTR CUDA kernels, TensorRT plugins and PyTorch extension, on a machine with
# nvcc but without a GPU or TensorRT libraries. Nothing here runs a kernel on a GPU.
#
#   TENSORRT_INCLUDE=/path/to/TensorRT/include cptr/export/plugins/check_build.sh
#
# Steps (select with CPTR_CHECK_STEPS, default "kernels emulation trt torch"):
#   kernels    nvcc -c of cptr/ops/*.cu for every arch in ARCHS, as C++17 (CMake) and C++20 (PyTorch),
#              with PyTorch's half-precision macros and warnings as errors
#   emulation  g++ build of testing/host_emulation.cpp (the kernels' arithmetic run on the CPU)
#   trt        CMake configure + build of both plugin libraries against $TENSORRT_INCLUDE with
#              CPTR_CHECK_ONLY=ON (no libnvinfer: libcptr_trt_plugins.so is left with getPluginRegistry
#              unresolved and is not loadable here), export checks with nm, then
#              testing/plugin_smoke.cpp run against libcptr_trt_plugins_dynamic.so
#   torch      g++ -fsyntax-only of cptr/ops/torch_ext.cpp against the installed torch's headers
# Environment: ARCHS (default "80 90"), BUILD_DIR (default /tmp/cptr_plugins_check), NVCC, CXX,
# PYTHON (for the torch step), CUDA_HOME (default: the nvcc's parent directory).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OPS="$(cd "$HERE/../../ops" && pwd)"  # the kernel sources and the PyTorch binding (cptr/ops/)
STEPS="${CPTR_CHECK_STEPS:-kernels emulation trt torch}"
ARCHS="${ARCHS:-80 90}"
BUILD_DIR="${BUILD_DIR:-/tmp/cptr_plugins_check}"
NVCC="${NVCC:-$(command -v nvcc || true)}"
CXX="${CXX:-g++}"
PYTHON="${PYTHON:-python3}"

die() { echo "check_build: $*" >&2; exit 1; }
step() { echo "== $*"; }

[[ -n "$NVCC" && -x "$NVCC" ]] || die "nvcc not found; install the CUDA toolkit or set NVCC=/path/to/nvcc"
if [[ -z "${CUDA_HOME:-}" ]]; then
  CUDA_HOME="$("$NVCC" -v -x cu -E /dev/null -o /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -1)"
  [[ -n "$CUDA_HOME" && -f "$CUDA_HOME/include/cuda_runtime_api.h" ]] || CUDA_HOME="$(cd "$(dirname "$(readlink -f "$NVCC")")/.." && pwd)"
fi
CUDA_INCLUDE="$CUDA_HOME/include"
[[ -f "$CUDA_INCLUDE/cuda_fp16.h" ]] || die "CUDA headers not found under $CUDA_INCLUDE (set CUDA_HOME)"
CUDA_LIB="$CUDA_HOME/lib64"
[[ -d "$CUDA_LIB" ]] || CUDA_LIB="$CUDA_HOME/lib"
mkdir -p "$BUILD_DIR"
echo "nvcc: $NVCC ($("$NVCC" --version | tail -1)); CUDA headers: $CUDA_INCLUDE; build dir: $BUILD_DIR"

has_step() { [[ " $STEPS " == *" $1 "* ]]; }

if has_step kernels; then
  gencode=()
  for a in $ARCHS; do gencode+=(-gencode "arch=compute_$a,code=sm_$a"); done
  torch_macros=(-D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ -D__CUDA_NO_BFLOAT16_CONVERSIONS__
                -D__CUDA_NO_HALF2_OPERATORS__ --expt-relaxed-constexpr)
  for std in c++17 c++20; do
    for src in upfirdn2d bias_act; do
      step "nvcc -std=$std $src.cu for sm_${ARCHS// /, sm_}"
      "$NVCC" -std="$std" -O3 "${gencode[@]}" "${torch_macros[@]}" -Xcompiler=-Wall,-Wextra,-fPIC \
        -Werror all-warnings -Xcompiler=-Werror -I"$OPS" \
        -c "$OPS/$src.cu" -o "$BUILD_DIR/${src}_${std}.o"
    done
  done
fi

if has_step emulation; then
  step "g++ testing/host_emulation.cpp"
  "$CXX" -std=c++17 -O2 -Wall -Wextra -Werror -isystem "$CUDA_INCLUDE" -I"$OPS" \
    "$HERE/testing/host_emulation.cpp" -o "$BUILD_DIR/host_emulation"
fi

if has_step trt; then
  [[ -n "${TENSORRT_INCLUDE:-}" ]] || die "set TENSORRT_INCLUDE to a directory with NvInfer.h (TensorRT's include/)"
  [[ -f "$TENSORRT_INCLUDE/NvInfer.h" ]] || die "$TENSORRT_INCLUDE/NvInfer.h not found"
  arch_list="${ARCHS// /;}"
  step "cmake configure + build against $TENSORRT_INCLUDE (CPTR_CHECK_ONLY=ON, archs $arch_list)"
  cmake -S "$HERE" -B "$BUILD_DIR/cmake" -DTENSORRT_INCLUDE_DIR="$TENSORRT_INCLUDE" -DCPTR_CHECK_ONLY=ON \
    -DCPTR_WERROR=ON -DCMAKE_CUDA_ARCHITECTURES="$arch_list" -DCMAKE_CUDA_COMPILER="$NVCC" >/dev/null
  cmake --build "$BUILD_DIR/cmake" -j "$(nproc)"
  dyn="$BUILD_DIR/cmake/libcptr_trt_plugins_dynamic.so"
  stat="$BUILD_DIR/cmake/libcptr_trt_plugins.so"
  step "exported symbols"
  for sym in getCreators setLoggerFinder; do
    nm -D --defined-only "$dyn" | grep -qw "$sym" || die "$dyn does not export $sym"
  done
  nm -D --undefined-only "$stat" | grep -qw getPluginRegistry || die "$stat does not reference getPluginRegistry"
  echo "libcptr_trt_plugins_dynamic.so exports getCreators, setLoggerFinder; libcptr_trt_plugins.so needs getPluginRegistry (libnvinfer)"
  step "plugin smoke test (dlopen + getCreators, build-time methods, serialization)"
  "$CXX" -std=c++17 -O1 -Wall -Wextra -Werror -isystem "$TENSORRT_INCLUDE" -isystem "$CUDA_INCLUDE" \
    "$HERE/testing/plugin_smoke.cpp" -ldl -o "$BUILD_DIR/plugin_smoke"
  # The plugins log the expected rejections to stderr; keep them out of the way unless a check fails.
  if ! out="$(LD_LIBRARY_PATH="$CUDA_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
              "$BUILD_DIR/plugin_smoke" "$dyn" 2>"$BUILD_DIR/plugin_smoke.log")"; then
    echo "$out"; cat "$BUILD_DIR/plugin_smoke.log"; die "plugin smoke test failed"
  fi
  echo "$out" | tail -1
fi

if has_step torch; then
  step "g++ -fsyntax-only torch_ext.cpp"
  torch_inc="$("$PYTHON" -c 'import torch.utils.cpp_extension as c; print(" ".join(c.include_paths()))' 2>/dev/null || true)"
  py_inc="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null || true)"
  if [[ -z "$torch_inc" ]]; then
    echo "skipped: $PYTHON cannot import torch"
  else
    inc=()
    for d in $torch_inc "$py_inc" "$CUDA_INCLUDE"; do inc+=(-isystem "$d"); done
    # CPU-only torch wheels lack this generated CUDA header; an empty stand-in is enough to parse.
    first="${torch_inc%% *}"
    if [[ ! -f "$first/c10/cuda/impl/cuda_cmake_macros.h" ]]; then
      mkdir -p "$BUILD_DIR/torch_shim/c10/cuda/impl"
      printf '#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n' >"$BUILD_DIR/torch_shim/c10/cuda/impl/cuda_cmake_macros.h"
      inc+=(-isystem "$BUILD_DIR/torch_shim")
      echo "(CPU torch: using a stand-in c10/cuda/impl/cuda_cmake_macros.h)"
    fi
    "$CXX" -std=c++20 -fsyntax-only -Wall -Wextra -Werror -DTORCH_EXTENSION_NAME=cptr_kernels_ext \
      -DTORCH_API_INCLUDE_EXTENSION_H "${inc[@]}" -I"$OPS" "$OPS/torch_ext.cpp"
  fi
fi

echo "check_build: OK ($STEPS)"
