// Dense linear algebra behind GPTQ (quant/gptq.h): the upper Cholesky factor of the inverse of a symmetric
// positive definite matrix, U^T U = A^-1, U upper triangular with a positive diagonal.
//
// Fast path (inverse_cholesky_upper): with J the order-reversing permutation, the lower Cholesky factor L of
// J A J gives A = R R^T with R = J L J upper, so A^-1 = R^-T R^-1 and U = R^-1 = J L^-1 J. L and L^-1 are
// computed together by a recursive blocked factorisation in f32 whose O(n^3) work runs on kernels::gemm_f32
// (L21 = A21 L11^-T, A22 -= L21 L21^T, (L^-1)21 = -L22^-1 L21 L11^-1); leaves of at most kLeaf rows run the
// plain f64 algorithm. About 2/3 n^3 flops instead of the 4/3 n^3 of "invert, then factor".
// Reference twin (inverse_cholesky_upper_ref): the literal recipe in f64, no blocking: A^-1 from the Cholesky
// factor of A (column by column solves), then the upper Cholesky factor of A^-1.
#pragma once
#include <cstdint>

namespace mpq::quant {

// A [n, n] f64 row-major, symmetric (only the lower triangle is read); U [n, n] f32 row-major (written, the
// strict lower triangle zero). Returns false when A is not numerically positive definite (a pivot <= 0 or
// not finite); U is then unspecified.
bool inverse_cholesky_upper(const double* A, int64_t n, float* U);
bool inverse_cholesky_upper_ref(const double* A, int64_t n, float* U);

// Leaf size of the recursion: blocks of at most this many rows are factored by the plain f64 code.
inline constexpr int64_t kInverseCholeskyLeaf = 96;

}  // namespace mpq::quant
