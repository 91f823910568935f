// Timing of compiled models: the one statistic every measurement of this project reports (the median of
// warm runs, with min / max beside it), the end-to-end latency of an assignment, and the per-layer
// latency table that `mpq profile` prints and the search reads.
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/precision.h"
#include "models/model.h"

namespace mpq::native {

struct Stats {
  double median = 0, min = 0, max = 0;
};
Stats stats_of(std::vector<double> v);  // throws on an empty list

// Median / min / max wall time (ms) of `runs` calls of `run` after `warmup` untimed calls.
Stats time_runs(const std::function<void()>& run, int warmup, int runs);

// Median / min / max wall time (ms) of each of several runs, timed side by side: each runs `warmup` untimed
// calls first, then `runs` rounds call every one once in turn (A B C A B C ...), so that load on a shared
// machine, frequency changes and cache state hit them alike and their ratios hold within one measurement.
std::vector<Stats> time_runs_interleaved(const std::vector<std::function<void()>>& fns, int warmup, int runs);

// The autotuner's choice among n candidates (both native engines, every layer and attention product):
// run(i) executes candidate i once on the buffers it will really use. Each candidate runs once untimed (a
// warm-up: oneDNN builds its primitive there; a candidate whose warm-up throws mpq::Error -- it rejects
// these arguments -- drops out), then `reps` rounds run every remaining candidate once in turn (A B C A B C
// ...), so a burst of load on a shared machine hits them alike; the smallest median wins. Returns the
// winner's index, or -1 when every candidate dropped out.
int fastest_candidate(size_t n, const std::function<void(size_t)>& run, int reps);

// Compiles `a` (autotuned) and times batch-1 runs of `input`: the end-to-end latency of a configuration.
Stats measure_assignment(models::Model& m, const Assignment& a, const models::Batch& input, int warmup = 3,
                         int runs = 20);
// The same for several configurations, compiled together and timed interleaved (time_runs_interleaved): the
// end-to-end latencies whose ratios a report quotes (the chosen configuration against all-int8 / all-int4).
std::vector<Stats> measure_assignments(models::Model& m, const std::vector<Assignment>& as, const models::Batch& input,
                                       int warmup = 3, int runs = 20);

// The measured per-layer latency table: for each precision the network compiled with every layer at it
// (`assignment_for(p)`), `runs` profiled batch-1 runs after `warmup`, per quantizable layer the median step
// time. Returns {"source", "measured": true, "model", "threads", "runs", "layers": {name: {prec: ms}},
// "other_ms", "end_to_end_ms", "weight_bytes", "layer_weight_bytes": {name: {prec: bytes}},
// "implementations"}. progress(precision, run, runs, ms) after every timed run, when given.
nlohmann::json measure_latency_table(models::Model& m, const std::vector<Precision>& precisions,
                                     const std::function<Assignment(Precision)>& assignment_for,
                                     const models::Batch& input, int warmup, int runs,
                                     const std::function<void(Precision, int, int, double)>& progress = {});

}  // namespace mpq::native
