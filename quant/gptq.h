// Weight rounding for int4 / int8 layers: round to nearest (the reference scheme) and second-order rounding
// (GPTQ, Frantar et al. 2022), with per-output-channel or per-group scales, a scale (clipping) search and bias
// correction; and the quantized-weight record that the fake-quant simulation and the native packers share.
//
// Record (QuantizedWeight): codes q [O, K] int8 with |q| <= qmax (qmax = 2^(bits-1) - 1: 7 int4, 127 int8),
// scales s [O][K/G] f32 (G the group along K; G = K for per output channel), optional bias correction [O] f32
// added to the layer's bias. The weight is exactly q * s, one f32 multiply per element, which is what the
// packed int kernels compute from the same codes and scales (ops/kernels_lowp.h). K is the flattened weight
// row in PyTorch order: linear [O, in]; conv [O, C/groups, KH, KW] -> k = (c * KH + kh) * KW + kw.
//
// Rounding: q = clamp(nearbyint(w / s), -qmax, qmax) (FE_TONEAREST: ties to even, as quant/quantizer.h).
//   nearest : every weight on its own; s = max|w| / qmax over the group (1 for an all-zero group), so without
//             a scale search the result is bit-identical to quantizer.h's fake_quant_weight.
//   gptq    : the layer's proxy Hessian H = X X^T / n (X [K, n]: the n calibration input rows; for a conv its
//             im2col rows) is dampened, H + lambda I with lambda = percdamp * mean diag H, and U, upper
//             triangular with U^T U = (H + lambda I)^-1, is computed once (quant/gptq_linalg.h). Columns are
//             rounded in order (act_order: by descending H_kk); column j's error e = (w_j - q_j s) / U_jj is
//             pushed onto the columns not yet rounded, w_t -= e * U_jt (t > j), inside blocks of `block`
//             columns immediately and onto the later columns once per block (one GEMM).
//             Scales: per output channel from the original row; per group at the group's first column from
//             the current (error-updated) weights, as GPTQ does; with act_order every group's scale comes from
//             the original weights before the first column ("static groups"), so a group stays a contiguous
//             run of K, which the packed kernels require.
//   exhaustive : per output channel only, K <= kExhaustiveMaxK (depthwise 3x3 rows of 9): every floor / ceil
//             pattern of w / s (2^K, Gray-code order, e^T (H + lambda I) e updated in O(K) per step) and the
//             best one kept: the exact minimum of the layer output error over the two nearest codes per weight.
//   Dead inputs (H_kk == 0: the input never moved on the calibration data) get H_kk = mean of the live
//   diagonal before dampening; their row and column of H are zero, so their rounding error reaches no other
//   column and they are rounded to nearest with the group's scale (kept, not zeroed: the input may move on
//   other data).
// Scale search (RoundingOptions::search): shrink factors a on the grid 1, 1 - d, ..., search_min (d = (1 -
// search_min) / search_grid), s = a * max|w| / qmax:
//   weighted : per group, the a minimising sum_k c_k (w_k - q_k s)^2 over the group's current weights, with
//              c_k = H_kk for nearest and c_k = 1 / U_kk^2 for gptq (the error increase of rounding column k
//              alone when the later columns are re-optimised: the OBS loss GPTQ tracks);
//   output   : per output channel, the a (one factor for all its groups) minimising that channel's exact
//              layer output error e^T H e (e = w - q s), running the rounding once per factor; rows are
//              independent in both schemes, so choosing per row is exact.
// Bias correction: delta_o = sum_k (w_ok - q_ok s) * mean_k(x), the mean over the calibration rows, so that the
// layer's mean output on the calibration data is preserved.
// Asymmetric target (RoundingOptions::asymmetric): see there.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/quantized_weight.h"
#include "core/tensor.h"

namespace mpq::quant {

using mpq::QuantizedWeight;  // core/quantized_weight.h: the record every consumer takes

// Calibration statistics of one layer input (quant/gptq_hessian.h accumulates them). A conv with `groups`
// groups has one Hessian per group over its K = (C / groups) * KH * KW columns; group b covers output
// channels [b * O / blocks, (b + 1) * O / blocks). A depthwise conv: one 9 x 9 Hessian per channel.
struct LayerStats {
  int64_t K = 0;             // columns per Hessian
  int64_t blocks = 1;        // Hessians (conv groups)
  int64_t rows = 0;          // input rows accumulated (per block: every block sees the same positions)
  std::vector<double> xtx;   // [blocks, K, K] sum over rows of x x^T
  std::vector<double> xsum;  // [blocks, K] sum over rows of x
  // Asymmetric targets (optional): x_ref is the same row in the reference (fp32) network, x the row this layer
  // receives in the quantized network.
  std::vector<double> xcross;    // [blocks, K, K] sum over rows of x_ref x^T, or empty
  std::vector<double> xsum_ref;  // [blocks, K] sum over rows of x_ref, or empty
};

enum class Rounding { nearest, gptq, exhaustive };
enum class ScaleSearch { none, weighted, output };
const char* rounding_name(Rounding r);
Rounding parse_rounding(const std::string& s);  // "nearest" | "gptq" | "exhaustive"; throws naming the value
// exhaustive rounding handles rows of at most this many columns (2^K floor / ceil patterns per row and scale)
inline constexpr int64_t kExhaustiveMaxK = 16;
const char* scale_search_name(ScaleSearch s);
ScaleSearch parse_scale_search(const std::string& s);  // "none" | "weighted" | "output"

struct RoundingOptions {
  int bits = 4;       // 2..8
  int64_t group = 0;  // 0: per output channel; else G with K % G == 0
  Rounding rounding = Rounding::gptq;
  double percdamp = 0.01;
  // A layer that saw fewer calibration rows than it has inputs (rows < K: ResNet50's classifier, 128 rows for
  // 2048 inputs) has a singular H; the dampening is then max(percdamp, low_rank_damp), so that GPTQ's updates
  // in the directions no calibration row spans stay small. 0: percdamp everywhere.
  double low_rank_damp = 0;
  int64_t block = 128;  // gptq lazy-update block, rounded up to a multiple of the group
  bool act_order = false;
  // gptq: round every row in both column orders (natural, and act order with static groups) and keep per row
  // the one of least output error (e^T M e, M as the output search); act_order is then ignored.
  bool order_search = false;
  ScaleSearch search = ScaleSearch::none;
  int search_grid = 10;     // shrink factors after 1.0
  double search_min = 0.5;  // smallest shrink factor
  bool bias_correction = false;
  // Asymmetric target (needs LayerStats::xcross): round toward W' = W + W (C - H) (H + lambda I)^-1 with
  // C = X_ref X^T / n, H = X X^T / n (X_ref: the reference network's inputs, X: the inputs of the quantized
  // network), the minimiser of ||W X_ref - W' X||^2 / n + lambda ||W' - W||^2; since ||W X_ref - Q X||^2 =
  // ||W X_ref - W' X||^2 + ||(W' - Q) X||^2 (+ the ridge term's cross term), GPTQ on W' with H also compensates
  // the error upstream. Bias correction then preserves the reference mean: delta = W mean(x_ref) - Q mean(x).
  bool asymmetric = false;
  // After rounding, each output channel's scales times a = (t^T M d) / (d^T M d) (d = q s, t the target row, M =
  // X X^T / n, centred when bias_correction): the least-squares factor for the chosen codes. The output search
  // then compares candidates after this step, and measures the error with the same (centred) M.
  bool rescale = false;
  // Coordinate descent after rounding (and rescale), scales fixed: per row, sweeps over the columns take any
  // code step q_k +- 1 (within +-qmax) that lowers e^T (M + lambda I) e (e = w - q s, M the error form above,
  // lambda = percdamp * mean diag H: the dampening keeps steps in directions no calibration row spans costly),
  // until a sweep changes nothing or `refine_passes` sweeps are done. GPTQ rounds each column once, greedily;
  // the descent ends at a point no single step improves (QuantEase, Behdin et al. 2023, does this from scratch).
  // 0: off. gptq rounding only (exhaustive rows are already optimal over their floor / ceil patterns).
  int refine_passes = 0;
};

// Rounds the weight w [O, K] (f32, PyTorch row order) of layer `layer` (named in errors). `stats` is needed by
// gptq, the output / weighted scale searches and bias correction (may be null for plain nearest). Errors name
// the layer and the numbers: a group that does not divide K or exceeds it, stats whose K / blocks do not fit
// the weight, non-finite statistics or weights.
QuantizedWeight round_weight(const float* w, int64_t O, int64_t K, const LayerStats* stats, const RoundingOptions& opt,
                             const std::string& layer);

// Mean squared layer output error over the calibration rows: sum_o e_o^T (X X^T / n) e_o, e = w - q s
// (f64 accumulation; the Hessians undamped).
double layer_output_error(const float* w, const QuantizedWeight& qw, const LayerStats& stats);

// ---- the GPTQ core, exposed for the tests ----
// Both round the rows of w [O, K] (f32, modified: the error updates land there) against U [K, K] (upper, f32)
// with scales s [O][K / G]: scales_fixed = true uses s as given; false computes each group's scale at its
// first column (search weighted: with c_k = 1 / U_kk^2; none: max|w| / qmax). q [O, K] receives the codes.
// gptq_rows: blocks of `block` columns (a multiple of G when G < K), lazy GEMM updates, rows in parallel.
// gptq_rows_ref: column by column, every update immediately, one row at a time.
struct GptqRowArgs {
  int64_t O = 0, K = 0, G = 0;
  int bits = 4;
  const float* U = nullptr;  // [K, K]
  bool scales_fixed = false;
  const int64_t* col_group = nullptr;      // [K] scale slot of column j (act_order, fixed scales), else j / G
  float shrink = 1.0f;                     // scales computed at a group's start without search: shrink * max|w| / qmax
  ScaleSearch search = ScaleSearch::none;  // none or weighted (at each group's start)
  int search_grid = 10;
  double search_min = 0.5;
  int64_t block = 128;
};
void gptq_rows(const GptqRowArgs& a, float* w, int8_t* q, float* s);
void gptq_rows_ref(const GptqRowArgs& a, float* w, int8_t* q, float* s);

}  // namespace mpq::quant
