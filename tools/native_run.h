// CLI glue shared by `mpq bench`, `mpq profile`, `mpq eval` for native (compiled, per-layer precision)
// execution: the default networks, the batch-1 input, the precision assignment from --precision /
// --config, calibration for uniform int8 / int4 requests, and timing statistics.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/model.h"
#include "models/native/native.h"
#include "quant/fake_quant.h"
#include "quant/rounding.h"
#include "tools/cli.h"

namespace mpq::cli {

// --weights PATH loads real weights; without it models::default_model (deterministic weights, speed only).
std::unique_ptr<models::Model> load_or_default_model(const Args& args);

// models::latency_input with --seq (BERT; default the config's sequence length).
models::Batch latency_input(const Args& args, const models::Model& m);

// Samples to calibrate uniform int8 / int4 requests on (--calib N, default 8): the last N real images of --calib-data
// (default <shared>/imagenet-val-1300) in the model's preprocessing preset, or for BERT real SST-2 train
// sentences (--calib-data default <shared>/sst2) when the weights come with a vocab.txt, else `fallback`.
// count_flag / count_default / chunk: another count flag (e.g. --rounding-calib 128), and images per batch
// (0: one batch).
std::vector<models::Batch> calibration_batches(const Args& args, models::Model& m, const models::Batch& fallback,
                                               const std::string& count_flag = "calib", int64_t count_default = 8,
                                               int64_t chunk = 0);

// --rounding nearest | gptq (default gptq; quant/rounding.h).
quant::WeightRounding rounding_option(const Args& args);
// --int4-group: 0 (per output channel), 32, 64 or 128 (UsageError otherwise).
int64_t int4_group_option(const Args& args);
// A precision name option (UsageError naming the flag and the accepted names otherwise).
Precision precision_option(const Args& args, const std::string& key, const std::string& def);

// The assignment a command runs: --config FILE (validated against the model; the weights identity is checked
// when the file states one and --weights is given), else every layer at --precision P (default fp32) with
// --int4-group G (0 = per output channel). Calibration runs only when P is int8 / int4: activation ranges on
// --calib N (default 8) samples, and with --rounding gptq (the default for int4; int8 rounds to nearest
// unless --rounding gptq is given) the weights are rounded on the last
// --rounding-calib N (default 128) samples (the same folder; `mpq eval --limit` counts from the first, so
// --limit 1172 of the 1300 images stays disjoint). `label` gets a
// short description ("int8", or the config path).
Assignment requested_assignment(const Args& args, models::Model& m, const models::Batch& fallback, std::string& label);

}  // namespace mpq::cli
