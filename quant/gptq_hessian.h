// Calibration statistics for weight rounding (quant/gptq.h): a LayerHook that accumulates, for each captured
// layer, the sums over the layer's input rows of x x^T and of x (LayerStats), without materialising all rows.
//   linear : a row is the last dimension of the input ([N, D] or [N, L, D]); with a row mask set (BERT: the
//            attention mask, [N * L]) only the rows of real tokens count, for inputs with N * L rows;
//   conv   : a row is one output position's receptive field (im2col, zero padding included), k = (c * KH + kh)
//            * KW + kw within the conv group, from the layer's geometry (models::ConvGeometry, TF SAME padding
//            included); one Hessian per conv group (depthwise: per channel, K = KH * KW).
// Rows are gathered in chunks of `chunk_rows`; a chunk's X^T X runs in f32 (kernels::gemm_f32; K <= kDirectK:
// plain f64 loops) and is added into the f64 sums, so f32 sums never exceed one chunk.
// Spatial subsampling (max_positions > 0): a conv sample with more output positions keeps max_positions of
// them, evenly spaced with a per-sample golden-ratio phase (deterministic, every position reachable).
// The hook captures what the layer receives after `inner` (e.g. a fake-quant hook: then the inputs of the
// partially quantized network, activations quantized), and records each captured layer's incoming weight
// (BN-folded by the model; before `inner`) once.
// Reference inputs (set_reference): the same batch's inputs of the captured layers in a reference network
// (InputRecorder on a forward just before); the hook then also sums x_ref x^T and x_ref over the same rows
// (LayerStats::xcross / xsum_ref), what asymmetric targets need.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "models/model.h"
#include "quant/gptq.h"

namespace mpq::quant {

struct CaptureOptions {
  int64_t max_positions = 0;  // conv: output positions kept per sample (0: all)
  int64_t chunk_rows = 2048;  // rows per f32 partial product (rows of several samples of a batch share one)
  // Once every captured layer has received its input and weight in the current forward (begin_forward()),
  // the next hook call throws StopForward: the rest of the forward is not needed. The driver catches it.
  bool stop_early = false;
};

inline constexpr int64_t kDirectK = 16;  // Hessians up to this size accumulate in plain f64 loops

struct StopForward {};

class StatsHook : public models::LayerHook {
 public:
  // `layers`: the layers to capture (conv kinds need their geometry; attention matmuls are refused).
  StatsHook(const std::vector<models::QuantLayer>& layers, std::shared_ptr<models::LayerHook> inner,
            CaptureOptions opt = {});
  Tensor on_weight(const std::string& layer, const Tensor& w) override;
  Tensor on_input(const std::string& layer, int operand, const Tensor& x) override;
  void set_row_mask(std::vector<int32_t> mask) { mask_ = std::move(mask); }
  // Layer -> the reference input of the current batch (same shape as what the layer receives); null: none.
  void set_reference(const std::map<std::string, Tensor>* ref) { ref_ = ref; }
  void begin_forward() { seen_input_.clear(), seen_weight_.clear(); }
  const std::map<std::string, LayerStats>& stats() const { return stats_; }
  std::map<std::string, LayerStats> take_stats() { return std::move(stats_); }
  const std::map<std::string, Tensor>& weights() const { return weights_; }

 private:
  void maybe_stop();
  void accumulate_linear(LayerStats& st, const Tensor& x, const Tensor* ref);
  void accumulate_conv(LayerStats& st, const models::ConvGeometry& g, const Tensor& x, const Tensor* ref);
  // rows [n, K] f32; ref_rows [n, K] the same rows in the reference network, or null
  void add_rows(LayerStats& st, int64_t block, const float* rows, const float* ref_rows, int64_t n);

  std::map<std::string, models::QuantLayer> layers_;
  std::shared_ptr<models::LayerHook> inner_;
  CaptureOptions opt_;
  std::map<std::string, LayerStats> stats_;
  std::map<std::string, Tensor> weights_;
  std::vector<int32_t> mask_;
  const std::map<std::string, Tensor>* ref_ = nullptr;
  std::set<std::string> seen_input_, seen_weight_;
  uint64_t samples_ = 0;  // conv samples seen (subsampling phase)
};

// Records the input (operand 0, after `inner`) of a set of layers, for StatsHook::set_reference. With
// stop_early, throws StopForward once every recorded layer has its input of the current forward.
class InputRecorder : public models::LayerHook {
 public:
  InputRecorder(std::set<std::string> layers, std::shared_ptr<models::LayerHook> inner, bool stop_early)
      : layers_(std::move(layers)), inner_(std::move(inner)), stop_early_(stop_early) {}
  Tensor on_weight(const std::string& layer, const Tensor& w) override;
  Tensor on_input(const std::string& layer, int operand, const Tensor& x) override;
  void begin_forward() { inputs_.clear(); }
  const std::map<std::string, Tensor>& inputs() const { return inputs_; }

 private:
  std::set<std::string> layers_;
  std::shared_ptr<models::LayerHook> inner_;
  bool stop_early_;
  std::map<std::string, Tensor> inputs_;
};

}  // namespace mpq::quant
