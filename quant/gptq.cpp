#include "quant/gptq.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "ops/kernels/f32.h"
#include "quant/gptq_linalg.h"

namespace mpq::quant {

const char* rounding_name(Rounding r) {
  switch (r) {
    case Rounding::nearest:
      return "nearest";
    case Rounding::gptq:
      return "gptq";
    case Rounding::exhaustive:
      return "exhaustive";
  }
  return "?";
}
Rounding parse_rounding(const std::string& s) {
  if (s == "nearest") return Rounding::nearest;
  if (s == "gptq") return Rounding::gptq;
  if (s == "exhaustive") return Rounding::exhaustive;
  fail("rounding '{}' is unknown (expected nearest, gptq or exhaustive)", s);
}
const char* scale_search_name(ScaleSearch s) {
  switch (s) {
    case ScaleSearch::none:
      return "none";
    case ScaleSearch::weighted:
      return "weighted";
    case ScaleSearch::output:
      return "output";
  }
  return "?";
}
ScaleSearch parse_scale_search(const std::string& s) {
  if (s == "none") return ScaleSearch::none;
  if (s == "weighted") return ScaleSearch::weighted;
  if (s == "output") return ScaleSearch::output;
  fail("scale search '{}' is unknown (expected none, weighted or output)", s);
}

namespace {

int8_t code_of(float w, float s, float qmax) { return int8_t(std::clamp(std::nearbyint(w / s), -qmax, qmax)); }

// shrink * max|w| / qmax over w[0, n); 1 for an all-zero run (quantizer.h's convention).
float amax_scale(const float* w, int64_t n, float qmax, float shrink) {
  float amax = 0;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(w[i]));
  return amax > 0 ? shrink * amax / qmax : 1.0f;
}

// Shrink factor i of the search grid: 1 - i * (1 - min) / grid.
float shrink_at(int i, int grid, double min) { return float(1.0 - double(i) * (1.0 - min) / double(grid)); }

// The scale among shrink_at(0..grid) minimising sum_k c[k * c_stride] (w_k - q_k s)^2 over w[0, n); ties keep
// the larger factor.
float weighted_scale(const float* w, int64_t n, const float* c, int64_t c_stride, float qmax, int grid, double min) {
  float best_s = amax_scale(w, n, qmax, 1.0f);
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i <= grid; ++i) {
    const float s = amax_scale(w, n, qmax, shrink_at(i, grid, min));
    double err = 0;
    for (int64_t k = 0; k < n; ++k) {
      const double d = double(w[k]) - double(float(code_of(w[k], s, qmax)) * s);
      err += double(c[k * c_stride]) * d * d;
    }
    if (err < best) best = err, best_s = s;
  }
  return best_s;
}

// Column j's scale slot and, when scales are computed on the fly, the scale of the group starting at j.
struct RowRounder {
  const GptqRowArgs& a;
  float qmax;
  std::vector<float> inv_u2;  // [K] 1 / U_kk^2: the weighted search's c_k
  explicit RowRounder(const GptqRowArgs& args) : a(args), qmax(float((1 << (args.bits - 1)) - 1)) {
    if (a.search == ScaleSearch::weighted) {
      inv_u2.resize(size_t(a.K));
      for (int64_t k = 0; k < a.K; ++k) inv_u2[size_t(k)] = 1.0f / (a.U[k * a.K + k] * a.U[k * a.K + k]);
    }
  }
  int64_t group_of(int64_t j) const { return a.col_group ? a.col_group[j] : j / a.G; }
  // Called before column j of a row whose current weights are row[0, K): sets the group's scale at its start.
  void maybe_set_scale(const float* row, int64_t j, float* s_row) const {
    if (a.scales_fixed || j % a.G != 0) return;
    s_row[j / a.G] = a.search == ScaleSearch::weighted
                         ? weighted_scale(row + j, a.G, inv_u2.data() + j, 1, qmax, a.search_grid, a.search_min)
                         : amax_scale(row + j, a.G, qmax, a.shrink);
  }
  // Rounds column j, pushes its error onto row[j + 1, end); returns the error e (before the 1 / U_jj).
  float round_column(float* row, int64_t j, int64_t end, int8_t* q_row, const float* s_row) const {
    const float s = s_row[group_of(j)];
    const int8_t c = code_of(row[j], s, qmax);
    q_row[j] = c;
    const float* u = a.U + j * a.K;
    const float e = (row[j] - float(c) * s) / u[j];
    for (int64_t t = j + 1; t < end; ++t) row[t] -= e * u[t];
    return e;
  }
};

void check_row_args(const GptqRowArgs& a) {
  check(a.O >= 0 && a.K > 0 && a.G > 0 && a.K % a.G == 0 && a.U != nullptr,
        "gptq: bad arguments O {} K {} G {} (G must divide K)", a.O, a.K, a.G);
  check(!a.col_group || a.scales_fixed, "gptq: a column-group map needs fixed (static) scales");
}

}  // namespace

void gptq_rows_ref(const GptqRowArgs& a, float* w, int8_t* q, float* s) {
  check_row_args(a);
  const RowRounder r(a);
  const int64_t ng = a.K / a.G;
  for (int64_t o = 0; o < a.O; ++o) {
    float* row = w + o * a.K;
    for (int64_t j = 0; j < a.K; ++j) {
      r.maybe_set_scale(row, j, s + o * ng);
      r.round_column(row, j, a.K, q + o * a.K, s + o * ng);
    }
  }
}

void gptq_rows(const GptqRowArgs& a, float* w, int8_t* q, float* s) {
  check_row_args(a);
  const RowRounder r(a);
  const int64_t ng = a.K / a.G;
  // A group's scale reads the group's current weights, so a group must not straddle two blocks.
  const int64_t B = a.G < a.K ? std::max<int64_t>(1, (a.block + a.G - 1) / a.G) * a.G : std::max<int64_t>(a.block, 1);
  std::vector<float> err(size_t(a.O * B));  // [O, B] f32: minus the scaled errors of the current block
  for (int64_t b0 = 0; b0 < a.K; b0 += B) {
    const int64_t b1 = std::min(a.K, b0 + B), nb = b1 - b0;
#pragma omp parallel for if (a.O * nb * nb > (1 << 16)) schedule(static)
    for (int64_t o = 0; o < a.O; ++o) {
      float* row = w + o * a.K;
      for (int64_t j = b0; j < b1; ++j) {
        r.maybe_set_scale(row, j, s + o * ng);
        err[size_t(o * B + (j - b0))] = -r.round_column(row, j, b1, q + o * a.K, s + o * ng);
      }
    }
    if (b1 < a.K)  // w[:, b1:] += (-err) U[b0:b1, b1:]
      kernels::gemm_f32({a.O, a.K - b1, nb, err.data(), B, false, a.U + b0 * a.K + b1, a.K, false, w + b1, a.K, 1.0f});
  }
}

}  // namespace mpq::quant

namespace mpq::quant {
namespace {

// e_o^T H e_o per row o of e = w - q s (w [O, K], H [K, K] f32); E H through the f32 GEMM, the dot in f64.
std::vector<double> row_output_errors(const float* w, const int8_t* q, const float* s, int64_t O, int64_t K, int64_t G,
                                      const float* H) {
  const int64_t ng = K / G;
  std::vector<float> e(size_t(O * K)), eh(size_t(O * K));  // [O, K] f32 each: the error, error times H
  for (int64_t o = 0; o < O; ++o)
    for (int64_t k = 0; k < K; ++k) e[size_t(o * K + k)] = w[o * K + k] - float(q[o * K + k]) * s[o * ng + k / G];
  kernels::gemm_f32({O, K, K, e.data(), K, false, H, K, false, eh.data(), K, 0.0f});
  std::vector<double> out(size_t(O), 0.0);  // [O]
  for (int64_t o = 0; o < O; ++o)
    for (int64_t k = 0; k < K; ++k) out[size_t(o)] += double(e[size_t(o * K + k)]) * double(eh[size_t(o * K + k)]);
  return out;
}

// The damped Hessian's inverse Cholesky factor U [K, K] (f32) in column order `perm`; dead inputs (H_kk == 0)
// get the mean live diagonal first. A factorisation that fails (rounding on a nearly singular H) is retried
// with ten times the dampening, up to kDampRetries times.
constexpr int kDampRetries = 6;
std::vector<float> damped_inverse_cholesky(const std::vector<double>& H, int64_t K, const std::vector<int64_t>& perm,
                                           double percdamp, const std::string& layer) {
  std::vector<double> hp(size_t(K * K));  // [K, K] f64: P H P^T, damped
  double live_sum = 0;
  int64_t live = 0;
  for (int64_t k = 0; k < K; ++k)
    if (H[size_t(k * K + k)] > 0) live_sum += H[size_t(k * K + k)], ++live;
  const double dead_diag = live > 0 ? live_sum / double(live) : 1.0;
  double diag_sum = 0;
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < K; ++j) {
      double v = H[size_t(perm[size_t(i)] * K + perm[size_t(j)])];
      if (i == j && !(v > 0)) v = dead_diag;
      hp[size_t(i * K + j)] = v;
      if (i == j) diag_sum += v;
    }
  double damp = percdamp * diag_sum / double(K);
  std::vector<float> U(size_t(K * K));  // [K, K] f32 upper
  for (int attempt = 0; attempt <= kDampRetries; ++attempt, damp *= 10) {
    std::vector<double> h = hp;
    for (int64_t k = 0; k < K; ++k) h[size_t(k * K + k)] += damp;
    if (inverse_cholesky_upper(h.data(), K, U.data())) return U;
  }
  fail("layer '{}': the {} x {} calibration Hessian is not positive definite even with dampening {}", layer, K, K,
       damp / 10);
}

// Per row o of w [O, K] with scale s[o]: the floor / ceil pattern of w / s minimising e^T Hd e (Hd [K, K] f64,
// damped), e = w - q s, enumerated in Gray-code order with O(K) updates of H e and of the objective.
void exhaustive_rows(const float* w, int64_t O, int64_t K, const float* s, const std::vector<double>& Hd, float qmax,
                     int8_t* q) {
#pragma omp parallel for if (O > 16) schedule(static)
  for (int64_t o = 0; o < O; ++o) {
    const float* row = w + o * K;
    std::vector<int8_t> lo(static_cast<size_t>(K)), hi(static_cast<size_t>(K)), cur(static_cast<size_t>(K));
    std::vector<double> e(static_cast<size_t>(K)), he(static_cast<size_t>(K), 0.0);
    for (int64_t k = 0; k < K; ++k) {
      const float f = std::clamp(std::floor(row[k] / s[o]), -qmax, qmax);
      lo[size_t(k)] = int8_t(f), hi[size_t(k)] = int8_t(std::min(f + 1, qmax));
      cur[size_t(k)] = lo[size_t(k)];
      e[size_t(k)] = double(row[k]) - double(float(lo[size_t(k)]) * s[o]);
    }
    for (int64_t i = 0; i < K; ++i)
      for (int64_t j = 0; j < K; ++j) he[size_t(i)] += Hd[size_t(i * K + j)] * e[size_t(j)];
    double f = 0;
    for (int64_t k = 0; k < K; ++k) f += e[size_t(k)] * he[size_t(k)];
    double best = f;
    uint32_t state = 0, best_state = 0;
    for (uint32_t step = 1; step < (1u << K); ++step) {
      const int k = std::countr_zero(step);
      state ^= 1u << k;
      const int8_t nq = (state >> k) & 1u ? hi[size_t(k)] : lo[size_t(k)];
      const double ne = double(row[k]) - double(float(nq) * s[o]), d = ne - e[size_t(k)];
      f += 2 * d * he[size_t(k)] + d * d * Hd[size_t(k * K + k)];
      for (int64_t i = 0; i < K; ++i) he[size_t(i)] += d * Hd[size_t(i * K + k)];
      e[size_t(k)] = ne;
      if (f < best) best = f, best_state = state;
    }
    for (int64_t k = 0; k < K; ++k) q[o * K + k] = (best_state >> k) & 1u ? hi[size_t(k)] : lo[size_t(k)];
  }
}

struct BlockJob {
  const float* w;  // [Ob, K] original weights
  int64_t O, K, G;
  const std::vector<double>* H;  // [K, K] f64, X X^T / n; null for plain nearest
  const std::vector<double>* M;  // [K, K] f64, the error form: H, or H - mean mean^T with bias correction
};

// Multiplies the scales of each row o by a = (t_o^T M d_o) / (d_o^T M d_o), d_o = q_o s_o, t = w (M [K, K] f32):
// the least-squares scale factor for the chosen codes. Rows with a non-positive or non-finite factor keep theirs.
void rescale_rows(const float* w, const int8_t* q, float* s, int64_t O, int64_t K, int64_t G, const float* M) {
  const int64_t ng = K / G;
  std::vector<float> d(size_t(O * K)), dm(size_t(O * K));  // [O, K] f32 each: q s, (q s) M
  for (int64_t o = 0; o < O; ++o)
    for (int64_t k = 0; k < K; ++k) d[size_t(o * K + k)] = float(q[o * K + k]) * s[o * ng + k / G];
  kernels::gemm_f32({O, K, K, d.data(), K, false, M, K, false, dm.data(), K, 0.0f});
  for (int64_t o = 0; o < O; ++o) {
    double num = 0, den = 0;
    for (int64_t k = 0; k < K; ++k) {
      num += double(w[o * K + k]) * double(dm[size_t(o * K + k)]);
      den += double(d[size_t(o * K + k)]) * double(dm[size_t(o * K + k)]);
    }
    const double a = num / den;
    if (den > 0 && a > 0 && std::isfinite(a))
      for (int64_t g = 0; g < ng; ++g) s[o * ng + g] = float(double(s[o * ng + g]) * a);
  }
}

// Coordinate descent on each row's codes (RoundingOptions::refine_passes), scales fixed. M [K, K] f64 is the
// undamped error form, Mf its f32 copy (the GEMM that starts H e); lambda the dampening added to its diagonal.
// A step changes e_k by d = -(+-1) s_k and f = e^T (M + lambda I) e by 2 d g_k + d^2 (M_kk + lambda), g = (M +
// lambda I) e kept up to date in f64 (O(K) per step taken). A step is taken only when it gains more than
// kMinGain of its own quadratic term, so rounding noise in g cannot make two steps undo each other forever.
constexpr double kMinGain = 1e-6;
void refine_rows(const float* w, int8_t* q, const float* s, int64_t O, int64_t K, int64_t G,
                 const std::vector<double>& M, const float* Mf, double lambda, float qmax, int passes) {
  const int64_t ng = K / G;
  std::vector<float> e(size_t(O * K)), g(size_t(O * K));  // [O, K] f32 each: w - q s, (w - q s) M
  for (int64_t o = 0; o < O; ++o)
    for (int64_t k = 0; k < K; ++k) e[size_t(o * K + k)] = w[o * K + k] - float(q[o * K + k]) * s[o * ng + k / G];
  kernels::gemm_f32({O, K, K, e.data(), K, false, Mf, K, false, g.data(), K, 0.0f});
#pragma omp parallel for if (O * K > (1 << 14)) schedule(dynamic, 4)
  for (int64_t o = 0; o < O; ++o) {
    std::vector<double> gr(static_cast<size_t>(K));  // [K] f64: (M + lambda I) e of this row
    for (int64_t k = 0; k < K; ++k) gr[size_t(k)] = double(g[size_t(o * K + k)]) + lambda * e[size_t(o * K + k)];
    int8_t* qr = q + o * K;
    for (int pass = 0; pass < passes; ++pass) {
      bool changed = false;
      for (int64_t k = 0; k < K; ++k) {
        const double sk = s[o * ng + k / G], mkk = M[size_t(k * K + k)] + lambda;
        for (const int dir : {1, -1}) {
          const int nq = int(qr[k]) + dir;
          if (std::abs(nq) > int(qmax)) continue;
          const double d = -double(dir) * sk, quad = d * d * mkk;
          if (!(2 * d * gr[size_t(k)] + quad < -kMinGain * quad)) continue;
          qr[k] = int8_t(nq);
          const double* mk = M.data() + k * K;  // row k = column k (M symmetric)
          for (int64_t i = 0; i < K; ++i) gr[size_t(i)] += d * mk[i];
          gr[size_t(k)] += d * lambda;
          changed = true;
          break;
        }
      }
      if (!changed) break;
    }
  }
}

// The column order of one gptq pass and what depends on it: perm[j] is the original column rounded j-th, U the
// damped inverse Cholesky factor of H permuted that way, cdiag the weighted search's c_k (original order), and
// col_group the static group of permuted column j (act order).
struct ColumnOrder {
  std::vector<int64_t> perm;       // [K]
  std::vector<float> U;            // [K, K] f32 (gptq)
  std::vector<float> cdiag;        // [K] (weighted search)
  std::vector<int64_t> col_group;  // [K]
};

ColumnOrder column_order(const BlockJob& b, const RoundingOptions& opt, bool act, const std::string& layer) {
  const int64_t K = b.K;
  ColumnOrder c;
  c.perm.resize(size_t(K));
  std::iota(c.perm.begin(), c.perm.end(), int64_t(0));
  if (act)
    std::stable_sort(c.perm.begin(), c.perm.end(),
                     [&](int64_t x, int64_t y) { return (*b.H)[size_t(x * K + x)] > (*b.H)[size_t(y * K + y)]; });
  if (opt.rounding == Rounding::gptq) c.U = damped_inverse_cholesky(*b.H, K, c.perm, opt.percdamp, layer);
  if (opt.search == ScaleSearch::weighted) {
    c.cdiag.resize(size_t(K));
    for (int64_t j = 0; j < K; ++j) {
      const int64_t k = c.perm[size_t(j)];
      c.cdiag[size_t(k)] = opt.rounding == Rounding::gptq ? 1.0f / (c.U[size_t(j * K + j)] * c.U[size_t(j * K + j)])
                                                          : float((*b.H)[size_t(k * K + k)]);
    }
  }
  c.col_group.resize(size_t(K));
  for (int64_t j = 0; j < K; ++j) c.col_group[size_t(j)] = c.perm[size_t(j)] / b.G;
  return c;
}

// Rounds one Hessian block's rows with every scale candidate in every column order tried (gptq with
// order_search: natural and act order; else the one order act_order names), keeping per row the candidate of
// least output error (rows are independent, so the choice per row is exact), or the only candidate.
void round_block(const BlockJob& b, const RoundingOptions& opt, int8_t* q_out, float* s_out, const std::string& layer) {
  const int64_t O = b.O, K = b.K, G = b.G, ng = K / G;
  const float qmax = float((1 << (opt.bits - 1)) - 1);
  const int ncand = opt.search == ScaleSearch::output ? opt.search_grid + 1 : 1;
  const bool gptq = opt.rounding == Rounding::gptq;
  std::vector<bool> orders;  // act order or not, per pass
  if (gptq && opt.order_search)
    orders = {false, true};
  else
    orders = {gptq && opt.act_order};
  const bool compare = ncand > 1 || orders.size() > 1;
  std::vector<float> hf;  // [K, K] f32 the undamped error form M (compared candidates, rescale)
  const bool refine = gptq && opt.refine_passes > 0;
  if (compare || opt.rescale || refine) hf.assign(b.M->begin(), b.M->end());
  double lambda = 0;  // the refinement's dampening: percdamp * mean diag H, as the Cholesky factor's
  if (refine) {
    for (int64_t k = 0; k < K; ++k) lambda += (*b.H)[size_t(k * K + k)];
    lambda *= opt.percdamp / double(K);
  }
  std::vector<double> hd;  // [K, K] f64 damped H (exhaustive)
  if (opt.rounding == Rounding::exhaustive) {
    check(G == K && K <= kExhaustiveMaxK,
          "layer '{}': exhaustive rounding takes per-output-channel rows of at most {} inputs, got group {} of {}",
          layer, kExhaustiveMaxK, G, K);
    hd = *b.H;
    double tr = 0;
    for (int64_t k = 0; k < K; ++k) tr += hd[size_t(k * K + k)];
    for (int64_t k = 0; k < K; ++k) hd[size_t(k * K + k)] += opt.percdamp * tr / double(K);
  }

  std::vector<double> best(size_t(O), std::numeric_limits<double>::infinity());  // [O]
  std::vector<int8_t> q(size_t(O * K)), qp(size_t(O * K));                       // [O, K] each
  std::vector<float> s(size_t(O * ng)), wp(size_t(O * K));                       // [O, ng], [O, K]
  for (const bool act : orders) {
    const ColumnOrder ord = column_order(b, opt, act, layer);
    const bool static_groups = gptq && act;
    for (int c = 0; c < ncand; ++c) {
      const float shrink = shrink_at(c, opt.search_grid, opt.search_min);
      const bool fixed = !gptq || static_groups;
      if (fixed)
        for (int64_t o = 0; o < O; ++o)
          for (int64_t g = 0; g < ng; ++g) {
            const float* wg = b.w + o * K + g * G;
            s[size_t(o * ng + g)] =
                opt.search == ScaleSearch::weighted
                    ? weighted_scale(wg, G, ord.cdiag.data() + g * G, 1, qmax, opt.search_grid, opt.search_min)
                    : amax_scale(wg, G, qmax, shrink);
          }
      if (opt.rounding == Rounding::exhaustive) {
        exhaustive_rows(b.w, O, K, s.data(), hd, qmax, q.data());
      } else if (opt.rounding == Rounding::nearest) {
        for (int64_t o = 0; o < O; ++o)
          for (int64_t k = 0; k < K; ++k)
            q[size_t(o * K + k)] = code_of(b.w[o * K + k], s[size_t(o * ng + k / G)], qmax);
      } else {
        for (int64_t o = 0; o < O; ++o)
          for (int64_t j = 0; j < K; ++j) wp[size_t(o * K + j)] = b.w[o * K + ord.perm[size_t(j)]];
        GptqRowArgs a;
        a.O = O, a.K = K, a.G = G, a.bits = opt.bits, a.U = ord.U.data(), a.block = opt.block;
        a.scales_fixed = fixed;
        a.col_group = static_groups ? ord.col_group.data() : nullptr;
        a.search = fixed ? ScaleSearch::none : (opt.search == ScaleSearch::weighted ? opt.search : ScaleSearch::none);
        a.search_grid = opt.search_grid, a.search_min = opt.search_min, a.shrink = shrink;
        gptq_rows(a, wp.data(), qp.data(), s.data());
        for (int64_t o = 0; o < O; ++o)
          for (int64_t j = 0; j < K; ++j) q[size_t(o * K + ord.perm[size_t(j)])] = qp[size_t(o * K + j)];
      }
      if (opt.rescale) rescale_rows(b.w, q.data(), s.data(), O, K, G, hf.data());
      if (refine) refine_rows(b.w, q.data(), s.data(), O, K, G, *b.M, hf.data(), lambda, qmax, opt.refine_passes);
      if (!compare) {
        std::copy(q.begin(), q.end(), q_out);
        std::copy(s.begin(), s.end(), s_out);
        return;
      }
      const std::vector<double> err = row_output_errors(b.w, q.data(), s.data(), O, K, G, hf.data());
      for (int64_t o = 0; o < O; ++o)
        if (err[size_t(o)] < best[size_t(o)]) {
          best[size_t(o)] = err[size_t(o)];
          std::copy(q.begin() + o * K, q.begin() + (o + 1) * K, q_out + o * K);
          std::copy(s.begin() + o * ng, s.begin() + (o + 1) * ng, s_out + o * ng);
        }
    }
  }
}

// W' = W + W (C - H) (H + lambda I)^-1 (w [O, K], C and H [K, K] f64 normalised), the minimiser of
// ||W X_ref - W' X||^2 / n + lambda ||W' - W||^2: (W (C - H)) U^T U with U^T U = (H + lambda I)^-1. The ridge
// term pulls W' toward W (not toward 0) in directions the calibration inputs do not span.
std::vector<float> asymmetric_target(const float* w, int64_t O, int64_t K, const std::vector<double>& C,
                                     const std::vector<double>& H, double percdamp, const std::string& layer) {
  std::vector<int64_t> identity(static_cast<size_t>(K));
  std::iota(identity.begin(), identity.end(), int64_t(0));
  const std::vector<float> U = damped_inverse_cholesky(H, K, identity, percdamp, layer);  // [K, K]
  std::vector<float> d(static_cast<size_t>(K * K));                                       // [K, K] f32: C - H
  for (size_t i = 0; i < d.size(); ++i) d[i] = float(C[i] - H[i]);
  std::vector<float> a(size_t(O * K)), t(size_t(O * K));                                    // [O, K] each
  kernels::gemm_f32({O, K, K, w, K, false, d.data(), K, false, a.data(), K, 0.0f});         // W (C - H)
  kernels::gemm_f32({O, K, K, a.data(), K, false, U.data(), K, true, t.data(), K, 0.0f});   // ... U^T
  kernels::gemm_f32({O, K, K, t.data(), K, false, U.data(), K, false, a.data(), K, 0.0f});  // ... U
  for (int64_t i = 0; i < O * K; ++i) a[size_t(i)] += w[i];
  return a;
}

bool all_finite(const double* p, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i])) return false;
  return true;
}

void check_stats(const LayerStats& st, int64_t O, int64_t K, const std::string& layer) {
  check(st.K == K && st.blocks > 0 && O % st.blocks == 0 && st.rows > 0 && st.xtx.size() == size_t(st.blocks * K * K) &&
            st.xsum.size() == size_t(st.blocks * K),
        "layer '{}': calibration statistics ({} blocks of {} columns, {} rows) do not fit its {} x {} weight", layer,
        st.blocks, st.K, st.rows, O, K);
  check(all_finite(st.xtx.data(), st.xtx.size()) && all_finite(st.xsum.data(), st.xsum.size()),
        "layer '{}': calibration statistics are not finite (inf / NaN in the layer's inputs)", layer);
  check(st.xcross.empty() ||
            (st.xcross.size() == st.xtx.size() && st.xsum_ref.size() == st.xsum.size() &&
             all_finite(st.xcross.data(), st.xcross.size()) && all_finite(st.xsum_ref.data(), st.xsum_ref.size())),
        "layer '{}': reference (cross) statistics do not fit or are not finite", layer);
}

}  // namespace

QuantizedWeight round_weight(const float* w, int64_t O, int64_t K, const LayerStats* st, const RoundingOptions& opt_in,
                             const std::string& layer) {
  check(opt_in.low_rank_damp >= 0 && std::isfinite(opt_in.low_rank_damp),
        "layer '{}': bad low-rank dampening {} (expected >= 0)", layer, opt_in.low_rank_damp);
  RoundingOptions opt = opt_in;  // a layer with fewer calibration rows than inputs: the low-rank dampening
  if (st && st->rows < K) opt.percdamp = std::max(opt.percdamp, opt.low_rank_damp);
  check(opt.bits >= 2 && opt.bits <= 8, "layer '{}': {} weight bits not supported (2..8)", layer, opt.bits);
  check(O > 0 && K > 0, "layer '{}': empty weight {} x {}", layer, O, K);
  const int64_t G = opt.group > 0 ? opt.group : K;
  check(G <= K, "layer '{}': weight group {} is larger than its {} inputs per output channel", layer, G, K);
  check(K % G == 0, "layer '{}': weight group {} does not divide its {} inputs per output channel", layer, G, K);
  check(opt.refine_passes >= 0, "layer '{}': refine passes {} is negative", layer, opt.refine_passes);
  check(opt.percdamp > 0 && opt.search_grid > 0 && opt.search_min > 0 && opt.search_min <= 1,
        "layer '{}': bad rounding options (percdamp {}, search grid {}, search min {})", layer, opt.percdamp,
        opt.search_grid, opt.search_min);
  for (int64_t i = 0; i < O * K; ++i)
    check(std::isfinite(w[i]), "layer '{}': weight element {} is not finite ({})", layer, i, w[i]);
  const bool needs_stats = opt.rounding != Rounding::nearest || opt.search != ScaleSearch::none ||
                           opt.bias_correction || opt.asymmetric || opt.rescale;
  if (needs_stats) {
    check(st != nullptr, "layer '{}': {} rounding with scale search '{}'{} needs calibration statistics", layer,
          rounding_name(opt.rounding), scale_search_name(opt.search),
          opt.bias_correction ? " and bias correction" : "");
    check_stats(*st, O, K, layer);
  }
  check(!opt.asymmetric || (st && !st->xcross.empty()),
        "layer '{}': the asymmetric target needs reference statistics (captured with a reference network)", layer);
  QuantizedWeight out;
  out.rows = O, out.cols = K, out.group = G, out.bits = opt.bits;
  out.q.resize(size_t(O * K));
  out.scale.resize(size_t(O * (K / G)));
  const int64_t nblk = needs_stats ? st->blocks : 1, Ob = O / nblk;
  std::vector<double> H, C, M;  // [K, K] f64 each: X X^T / n, X_ref X^T / n, the error form of the current block
  std::vector<float> target;    // [O, K] f32: W' (asymmetric) or empty
  if (opt.asymmetric) target.resize(size_t(O * K));
  for (int64_t b = 0; b < nblk; ++b) {
    if (needs_stats) {
      H.assign(st->xtx.begin() + b * K * K, st->xtx.begin() + (b + 1) * K * K);
      for (double& v : H) v /= double(st->rows);
    }
    const float* wb = w + b * Ob * K;
    if (opt.asymmetric) {
      C.assign(st->xcross.begin() + b * K * K, st->xcross.begin() + (b + 1) * K * K);
      for (double& v : C) v /= double(st->rows);
      const std::vector<float> t = asymmetric_target(wb, Ob, K, C, H, opt.percdamp, layer);
      std::copy(t.begin(), t.end(), target.begin() + b * Ob * K);
      wb = target.data() + b * Ob * K;
    }
    if (needs_stats) {
      M = H;
      if (opt.bias_correction)  // the mean error goes into the bias: what remains is the centred form
        for (int64_t i = 0; i < K; ++i)
          for (int64_t j = 0; j < K; ++j)
            M[size_t(i * K + j)] -=
                st->xsum[size_t(b * K + i)] * st->xsum[size_t(b * K + j)] / (double(st->rows) * double(st->rows));
    }
    const BlockJob job{wb, Ob, K, G, needs_stats ? &H : nullptr, needs_stats ? &M : nullptr};
    round_block(job, opt, out.q.data() + b * Ob * K, out.scale.data() + b * Ob * (K / G), layer);
  }
  if (opt.bias_correction) {
    out.bias_correction.assign(size_t(O), 0.0f);
    const int64_t ng = K / G;
    // delta_o = W_o mean(x_ref) - Q_o mean(x); x_ref = x without an asymmetric target
    const std::vector<double>& ref_sum = opt.asymmetric ? st->xsum_ref : st->xsum;
    for (int64_t o = 0; o < O; ++o) {
      const double* xs = st->xsum.data() + (o / Ob) * K;
      const double* xr = ref_sum.data() + (o / Ob) * K;
      double d = 0;
      for (int64_t k = 0; k < K; ++k)
        d += double(w[o * K + k]) * xr[k] -
             double(float(out.q[size_t(o * K + k)]) * out.scale[size_t(o * ng + k / G)]) * xs[k];
      out.bias_correction[size_t(o)] = float(d / double(st->rows));
    }
  }
  return out;
}

double layer_output_error(const float* w, const QuantizedWeight& qw, const LayerStats& st) {
  check_stats(st, qw.rows, qw.cols, "output error");
  const int64_t K = qw.cols, Ob = qw.rows / st.blocks, ng = K / qw.group;
  double total = 0;
  std::vector<float> h(size_t(K * K));  // [K, K] f32
  for (int64_t b = 0; b < st.blocks; ++b) {
    for (int64_t i = 0; i < K * K; ++i) h[size_t(i)] = float(st.xtx[size_t(b * K * K + i)] / double(st.rows));
    const std::vector<double> e = row_output_errors(w + b * Ob * K, qw.q.data() + b * Ob * K,
                                                    qw.scale.data() + b * Ob * ng, Ob, K, qw.group, h.data());
    for (double v : e) total += v;
  }
  return total;
}

}  // namespace mpq::quant
