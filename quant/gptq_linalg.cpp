#include "quant/gptq_linalg.h"

#include <cmath>
#include <vector>

#include "ops/kernels/f32.h"

namespace mpq::quant {
namespace {

// In-place lower Cholesky factor of a [n, n] f64 (lower triangle read and written, upper untouched).
bool cholesky_lower_f64(double* a, int64_t n, int64_t lda) {
  for (int64_t j = 0; j < n; ++j) {
    double d = a[j * lda + j];
    for (int64_t k = 0; k < j; ++k) d -= a[j * lda + k] * a[j * lda + k];
    if (!(d > 0) || !std::isfinite(d)) return false;
    const double l = std::sqrt(d);
    a[j * lda + j] = l;
    for (int64_t i = j + 1; i < n; ++i) {
      double s = a[i * lda + j];
      for (int64_t k = 0; k < j; ++k) s -= a[i * lda + k] * a[j * lda + k];
      a[i * lda + j] = s / l;
    }
  }
  return true;
}

// li [n, n] = L^-1 for lower triangular L (f64, both row-major); li's upper triangle is set to zero.
void invert_lower_f64(const double* l, int64_t n, int64_t ldl, double* li, int64_t ldi) {
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t i = 0; i < j; ++i) li[i * ldi + j] = 0;
    li[j * ldi + j] = 1.0 / l[j * ldl + j];
    for (int64_t i = j + 1; i < n; ++i) {  // forward substitution for column j of L^-1
      double s = 0;
      for (int64_t k = j; k < i; ++k) s += l[i * ldl + k] * li[k * ldi + j];
      li[i * ldi + j] = -s / l[i * ldl + i];
    }
  }
}

// C[m, n] (+)= op(A) op(B) through the dispatched f32 GEMM.
void gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, bool ta, const float* b, int64_t ldb, bool tb,
          float* c, int64_t ldc, bool accumulate) {
  kernels::gemm_f32({m, n, k, a, lda, ta, b, ldb, tb, c, ldc, accumulate ? 1.0f : 0.0f});
}

// On the [m, m] block at a (leading dimension ld, lower triangle = the SPD input): writes L (lower triangle of
// a) and L^-1 (li, full block, upper triangle zero). Both f32.
bool chol_inv_rec(float* a, float* li, int64_t m, int64_t ld) {
  if (m <= kInverseCholeskyLeaf) {
    std::vector<double> d(size_t(m * m)), di(size_t(m * m));  // [m, m] f64 each
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j <= i; ++j) d[size_t(i * m + j)] = a[i * ld + j];
    if (!cholesky_lower_f64(d.data(), m, m)) return false;
    invert_lower_f64(d.data(), m, m, di.data(), m);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < m; ++j) {
        if (j <= i) a[i * ld + j] = float(d[size_t(i * m + j)]);
        li[i * ld + j] = float(di[size_t(i * m + j)]);
      }
    return true;
  }
  // split on a multiple of 16 rows so the GEMM panels stay aligned-ish
  const int64_t h = (m / 2 + 15) / 16 * 16, r = m - h;
  float* a21 = a + h * ld;    // [r, h]
  float* a22 = a21 + h;       // [r, r]
  float* li21 = li + h * ld;  // [r, h]
  float* li22 = li21 + h;     // [r, r]
  if (!chol_inv_rec(a, li, h, ld)) return false;
  std::vector<float> t(size_t(r * h)), n21(size_t(r * h));  // [r, h] each
  // L21 = A21 L11^-T
  gemm(r, h, h, a21, ld, false, li, ld, true, t.data(), h, false);
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < h; ++j) {
      a21[i * ld + j] = t[size_t(i * h + j)];
      n21[size_t(i * h + j)] = -t[size_t(i * h + j)];
    }
  // A22 -= L21 L21^T (the full square; only its lower triangle is read below)
  gemm(r, r, h, n21.data(), h, false, a21, ld, true, a22, ld, true);
  if (!chol_inv_rec(a22, li22, r, ld)) return false;
  // (L^-1)21 = -L22^-1 (L21 L11^-1)
  gemm(r, h, h, n21.data(), h, false, li, ld, false, t.data(), h, false);  // -L21 L11^-1
  gemm(r, h, r, li22, ld, false, t.data(), h, false, li21, ld, false);
  for (int64_t i = 0; i < h; ++i)
    for (int64_t j = h; j < m; ++j) li[i * ld + j] = 0;
  return true;
}

}  // namespace

bool inverse_cholesky_upper(const double* A, int64_t n, float* U) {
  if (n == 0) return true;
  std::vector<float> b(size_t(n * n)), li(size_t(n * n));  // [n, n] f32 each: J A J, then L; L^-1
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) b[size_t(i * n + j)] = float(A[(n - 1 - j) * n + (n - 1 - i)]);
  // (J A J)_ij = A_(n-1-i)(n-1-j); for j <= i that is an upper entry of A, read through symmetry from the lower
  if (!chol_inv_rec(b.data(), li.data(), n, n)) return false;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) U[i * n + j] = li[size_t((n - 1 - i) * n + (n - 1 - j))];
  for (int64_t i = 0; i < n * n; ++i)
    if (!std::isfinite(U[i])) return false;
  return true;
}

bool inverse_cholesky_upper_ref(const double* A, int64_t n, float* U) {
  std::vector<double> l(size_t(n * n), 0.0), inv(size_t(n * n)), li(size_t(n * n));  // [n, n] f64 each
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) l[size_t(i * n + j)] = A[i * n + j];
  if (!cholesky_lower_f64(l.data(), n, n)) return false;
  invert_lower_f64(l.data(), n, n, li.data(), n);
  // A^-1 = L^-T L^-1
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0;
      for (int64_t k = i; k < n; ++k) s += li[size_t(k * n + i)] * li[size_t(k * n + j)];
      inv[size_t(i * n + j)] = inv[size_t(j * n + i)] = s;
    }
  // A^-1 = M M^T with M lower (its Cholesky factor), U = M^T
  if (!cholesky_lower_f64(inv.data(), n, n)) return false;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) U[i * n + j] = j >= i ? float(inv[size_t(j * n + i)]) : 0.0f;
  return true;
}

}  // namespace mpq::quant
