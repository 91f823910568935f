#include "models/native/measure.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>

#include "core/cpu_features.h"
#include "core/error.h"
#include "core/threading.h"
#include "models/native/native.h"

namespace mpq::native {

Stats stats_of(std::vector<double> v) {
  check(!v.empty(), "stats_of: no samples");
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return {v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]), v.front(), v.back()};
}

std::vector<Stats> time_runs_interleaved(const std::vector<std::function<void()>>& fns, int warmup, int runs) {
  check(runs > 0 && warmup >= 0, "timing: runs ({}) must be positive and warmup ({}) non-negative", runs, warmup);
  for (const auto& f : fns)
    for (int i = 0; i < warmup; ++i) f();
  std::vector<std::vector<double>> ms(fns.size());  // [fns][runs]
  for (int r = 0; r < runs; ++r)
    for (size_t i = 0; i < fns.size(); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      fns[i]();
      ms[i].push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
  std::vector<Stats> out;  // [fns]
  for (auto& v : ms) out.push_back(stats_of(std::move(v)));
  return out;
}

Stats time_runs(const std::function<void()>& run, int warmup, int runs) {
  return time_runs_interleaved({run}, warmup, runs)[0];
}

int fastest_candidate(size_t n, const std::function<void(size_t)>& run, int reps) {
  check(reps >= 1, "autotune: reps must be >= 1, got {}", reps);
  std::vector<size_t> usable;              // candidates whose warm-up ran
  std::vector<std::function<void()>> fns;  // [usable]
  for (size_t c = 0; c < n; ++c) try {
      run(c);
      usable.push_back(c);
      fns.push_back([&run, c] { run(c); });
    } catch (const Error&) {
    }
  if (usable.empty()) return -1;
  const std::vector<Stats> st = time_runs_interleaved(fns, 0, reps);  // the warm-ups above were the first calls
  size_t best = 0;
  for (size_t i = 1; i < st.size(); ++i)
    if (st[i].median < st[best].median) best = i;
  return int(usable[best]);
}

std::vector<Stats> measure_assignments(models::Model& m, const std::vector<Assignment>& as, const models::Batch& input,
                                       int warmup, int runs) {
  std::vector<std::unique_ptr<NativeModel>> nms;  // [as]
  std::vector<std::function<void()>> fns;         // [as]
  for (const Assignment& a : as) {
    nms.push_back(compile(m, a));
    fns.push_back([&input, nm = nms.back().get()] { nm->run(input); });
  }
  return time_runs_interleaved(fns, warmup, runs);
}

Stats measure_assignment(models::Model& m, const Assignment& a, const models::Batch& input, int warmup, int runs) {
  return measure_assignments(m, {a}, input, warmup, runs)[0];
}

nlohmann::json measure_latency_table(models::Model& m, const std::vector<Precision>& precisions,
                                     const std::function<Assignment(Precision)>& assignment_for,
                                     const models::Batch& input, int warmup, int runs,
                                     const std::function<void(Precision, int, int, double)>& progress) {
  check(runs > 0 && warmup >= 0, "latency table: runs must be positive and warmup non-negative");
  std::set<std::string> quant_names;
  for (const models::QuantLayer& l : m.quant_layers()) quant_names.insert(l.name);
  using nlohmann::json;
  json layers = json::object(), other = json::object(), e2e = json::object(), bytes = json::object(),
       layer_bytes = json::object(), impls = json::object();
  for (Precision p : precisions) {
    const std::string pn = precision_name(p);
    const auto nm = compile(m, assignment_for(p));
    std::map<std::string, std::vector<double>> per_step;  // layer -> ms per timed run
    std::vector<double> other_ms, total_ms;               // [runs]
    for (int r = 0; r < warmup + runs; ++r) {
      std::vector<StepTime> steps;
      const auto t0 = std::chrono::steady_clock::now();
      nm->run_profiled(input, steps);
      const double total = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (r < warmup) continue;
      double rest = 0;
      for (const StepTime& s : steps) {
        if (s.quant_layer)
          per_step[s.name].push_back(s.ms);
        else
          rest += s.ms;
      }
      other_ms.push_back(rest);
      total_ms.push_back(total);
      if (progress) progress(p, r - warmup + 1, runs, total);
    }
    for (const std::string& name : quant_names) {
      auto it = per_step.find(name);
      check(it != per_step.end(), "profile: the native {} run reported no time for layer '{}'", pn, name);
      layers[name][pn] = stats_of(it->second).median;
    }
    for (const auto& [name, b] : nm->layer_weight_bytes()) layer_bytes[name][pn] = b;
    other[pn] = stats_of(other_ms).median;
    e2e[pn] = stats_of(total_ms).median;
    bytes[pn] = nm->weight_bytes();
    impls[pn] = nm->implementations();
  }
  return {{"source", fmt::format("mpq profile: {} batch 1, median of {} warm runs per layer, {} threads, ISA cap {}",
                                 m.name(), runs, num_threads(), isa_name(isa_cap()))},
          {"measured", true},
          {"model", m.name()},
          {"threads", num_threads()},
          {"runs", runs},
          {"layers", layers},
          {"other_ms", other},
          {"end_to_end_ms", e2e},
          {"weight_bytes", bytes},
          {"layer_weight_bytes", layer_bytes},
          {"implementations", impls}};
}

}  // namespace mpq::native
