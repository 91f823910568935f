// Internal: the individual fp32 implementations behind ops/kernels/f32.h and their dispatch lists.
// Tests and benchmarks use this to run every registered implementation against the reference.
#pragma once
#include "ops/kernels/f32.h"
#include "ops/kernels/registry.h"

namespace mpq::kernels {

using GemmFn = void (*)(const GemmArgs&);
using ConvFwdFn = void (*)(const Conv2dShape&, const float* x, const float* w, const float* bias, float* y);
using ConvBwdDataFn = void (*)(const Conv2dShape&, const float* gy, const float* w, float* gx);
using ConvBwdWeightFn = void (*)(const Conv2dShape&, const float* x, const float* gy, float* gw, float* gbias);

using GemmList = KernelList<GemmArgs, GemmFn>;
using ConvFwdList = KernelList<Conv2dShape, ConvFwdFn>;
using ConvBwdDataList = KernelList<Conv2dShape, ConvBwdDataFn>;
using ConvBwdWeightList = KernelList<Conv2dShape, ConvBwdWeightFn>;

const GemmList& gemm_f32_list();
const ConvFwdList& conv2d_fwd_f32_list();
const ConvBwdDataList& conv2d_bwd_data_f32_list();
const ConvBwdWeightList& conv2d_bwd_weight_f32_list();

// Packed-panel GEMMs (ops/kernels/x86/). Tile = MR rows x NR columns of C per microkernel call.
void gemm_f32_14x32__avx512(const GemmArgs& g);
void gemm_f32_6x16__avx2(const GemmArgs& g);
// oneDNN matmul primitive (ops/kernels/onednn/), cached per shape.
void gemm_f32__onednn(const GemmArgs& g);

// oneDNN convolutions (ops/kernels/onednn/), cached per shape.
void conv2d_fwd_f32__onednn(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y);
void conv2d_bwd_data_f32__onednn(const Conv2dShape& s, const float* gy, const float* w, float* gx);
void conv2d_bwd_weight_f32__onednn(const Conv2dShape& s, const float* x, const float* gy, float* gw, float* gbias);

// Argument validation shared by dispatchers and implementations (throws mpq::Error).
void check_gemm_args(const GemmArgs& g);
void check_conv2d_shape(const Conv2dShape& s);

}  // namespace mpq::kernels
