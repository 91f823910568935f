#include "quant/search.h"

#include <cmath>
#include <fstream>
#include <set>

#include "core/error.h"

namespace mpq::quant {

using nlohmann::json;

bool AccuracyRange::ok(double metric, double baseline) const {
  if (max_drop >= 0) return metric >= baseline - max_drop;
  return metric >= baseline * min_relative;
}

std::string AccuracyRange::describe() const {
  if (max_drop >= 0) return fmt::format("metric >= baseline - {}", max_drop);
  return fmt::format("metric >= baseline * {}", min_relative);
}

void AccuracyRange::validate() const {
  check((max_drop >= 0) != (min_relative >= 0),
        "accuracy range: set exactly one of max_drop ({}) and min_relative ({})", max_drop, min_relative);
  check(min_relative < 0 || min_relative <= 1, "accuracy range: min_relative {} must be in [0, 1]", min_relative);
}

namespace {

void check_perm(const std::vector<int>& order, int n, const char* what) {
  check(int(order.size()) == n, "search: {} has {} entries for {} layers", what, order.size(), n);
  std::set<int> seen(order.begin(), order.end());
  check(int(seen.size()) == n && *seen.begin() == 0 && *seen.rbegin() == n - 1,
        "search: {} is not a permutation of [0, {})", what, n);
}

// Warn about every pair of probes with k1 < k2 and metric(k2) > metric(k1) + tol.
void monotone_warnings(const std::vector<Probe>& probes, int stage, double tol, std::vector<std::string>& out) {
  for (const Probe& a : probes)
    for (const Probe& b : probes)
      if (a.stage == stage && b.stage == stage && a.k < b.k && b.metric > a.metric + tol)
        out.push_back(
            fmt::format("stage {}: non-monotone probes: k = {} scored {:.6g} but k = {} (more layers "
                        "lowered) scored {:.6g}",
                        stage, a.k, a.metric, b.k, b.metric));
}

}  // namespace

SearchResult bisection_search(int n, const std::vector<int>& order8, const std::vector<int>& order4,
                              const ConfigMetric& metric, const SearchOptions& opt) {
  opt.range.validate();
  check(n >= 0, "search: {} layers", n);
  check_perm(order8, n, "order8");
  if (opt.stage2) check_perm(order4, n, "order4");
  SearchResult r;
  std::map<std::vector<Precision>, double> memo;
  auto eval = [&](const std::vector<Precision>& p) {
    auto it = memo.find(p);
    if (it != memo.end()) return it->second;
    const double v = metric(p);
    check(std::isfinite(v), "search: metric is not finite ({})", v);
    ++r.evaluations;
    return memo[p] = v;
  };
  const std::vector<Precision> base(size_t(n), opt.start);
  r.baseline = eval(base);
  r.probes.push_back({0, 0, r.baseline, true});

  auto lowered = [&](const std::vector<Precision>& from, const std::vector<int>& order, int k, Precision to) {
    std::vector<Precision> p = from;
    for (int i = 0; i < k; ++i) p[size_t(order[size_t(i)])] = to;
    return p;
  };
  // largest k in [0, kmax] inside the range, assuming k = 0 is inside (it is the previous stage's result)
  auto bisect = [&](int stage, const std::vector<Precision>& from, const std::vector<int>& order, int kmax,
                    Precision to) {
    int lo = 0, hi = kmax + 1;
    while (hi - lo > 1) {
      const int mid = lo + (hi - lo) / 2;
      const double m = eval(lowered(from, order, mid, to));
      const bool ok = opt.range.ok(m, r.baseline);
      r.probes.push_back({stage, mid, m, ok});
      (ok ? lo : hi) = mid;
    }
    monotone_warnings(r.probes, stage, opt.monotone_tol, r.warnings);
    return lo;
  };

  r.k8 = bisect(1, base, order8, n, Precision::int8);
  r.precisions = lowered(base, order8, r.k8, Precision::int8);
  if (opt.stage2 && r.k8 > 0) {
    std::vector<int> int8_layers;  // order4 restricted to the int8 set
    for (int i : order4)
      if (r.precisions[size_t(i)] == Precision::int8) int8_layers.push_back(i);
    const std::vector<Precision> s1 = r.precisions;
    r.k4 = bisect(2, s1, int8_layers, r.k8, Precision::int4);
    r.precisions = lowered(s1, int8_layers, r.k4, Precision::int4);
  }
  if (opt.recheck) {
    r.final_metric = opt.recheck(r.precisions);
    ++r.evaluations;
    r.final_rechecked = true;
  } else {
    r.final_metric = eval(r.precisions);  // memoised: the configuration was a probe (or the baseline)
  }
  r.final_ok = opt.range.ok(r.final_metric, r.baseline);
  r.probes.push_back({3, r.k8, r.final_metric, r.final_ok});
  if (!r.final_ok)
    r.warnings.push_back(fmt::format("final configuration re-check scored {:.6g}, outside the range ({})",
                                     r.final_metric, opt.range.describe()));
  if (!opt.weight_numel.empty()) {
    r.weight_bytes = weight_bytes(opt.weight_numel, r.precisions);
    if (opt.max_bytes && r.weight_bytes > *opt.max_bytes) {
      r.memory_ok = false;
      r.warnings.push_back(fmt::format("final configuration needs {:.0f} weight bytes, above the limit {:.0f}",
                                       r.weight_bytes, *opt.max_bytes));
    }
  }
  return r;
}

json SearchResult::to_json() const {
  json pr = json::array();
  for (const Probe& p : probes) pr.push_back({{"stage", p.stage}, {"k", p.k}, {"metric", p.metric}, {"ok", p.ok}});
  std::vector<std::string> prec;
  for (Precision p : precisions) prec.push_back(precision_name(p));
  return {{"k8", k8},
          {"k4", k4},
          {"baseline", baseline},
          {"final_metric", final_metric},
          {"final_ok", final_ok},
          {"final_rechecked", final_rechecked},
          {"probes", pr},
          {"evaluations", evaluations},
          {"warnings", warnings},
          {"precisions", prec},
          {"weight_bytes", weight_bytes},
          {"memory_ok", memory_ok}};
}

SweepResult sweep_k(const std::vector<Precision>& base, const std::vector<int>& order, Precision target,
                    const ConfigMetric& metric, const AccuracyRange& range) {
  range.validate();
  check(order.size() <= base.size(), "sweep: order has {} entries for {} layers", order.size(), base.size());
  SweepResult s;
  std::vector<Precision> p = base;
  double baseline = 0;
  bool prefix = true;
  for (int k = 0; k <= int(order.size()); ++k) {
    if (k > 0) p[size_t(order[size_t(k - 1)])] = target;
    const double m = metric(p);
    if (k == 0) baseline = m;
    const bool ok = range.ok(m, baseline);
    s.probes.push_back({4, k, m, ok});
    if (ok) s.best_k = k;
    prefix = prefix && ok;
    if (prefix) s.prefix_k = k;
  }
  return s;
}

double weight_bytes(const std::vector<int64_t>& numel, const std::vector<Precision>& p) {
  check(numel.size() == p.size(), "weight_bytes: {} sizes for {} precisions", numel.size(), p.size());
  double b = 0;
  for (size_t i = 0; i < p.size(); ++i) b += double(numel[i]) * precision_weight_bits(p[i]) / 8.0;
  return b;
}

json LatencyTable::to_json() const {
  json layers = json::object();
  for (const auto& [name, m] : ms)
    for (const auto& [p, v] : m) layers[name][precision_name(p)] = v;
  return {{"source", source}, {"measured", measured}, {"layers", layers}};
}

LatencyTable latency_table_from_json(const json& j, const std::string& what) {
  check(j.is_object() && j.contains("layers") && j["layers"].is_object(),
        "latency table '{}': field 'layers' is missing or not an object", what);
  check(j.contains("measured") && j["measured"].is_boolean(), "latency table '{}': boolean field 'measured' missing",
        what);
  LatencyTable t;
  t.source = j.value("source", std::string());
  t.measured = j["measured"].get<bool>();
  for (const auto& [name, m] : j["layers"].items())
    for (const auto& [prec, v] : m.items()) {
      check(v.is_number() && v.get<double>() >= 0, "latency table '{}': layer '{}' {} is not a time >= 0: {}", what,
            name, prec, v.dump());
      t.ms[name][parse_precision(prec)] = v.get<double>();
    }
  return t;
}

LatencyTable load_latency_table(const std::string& path) {
  std::ifstream f(path);
  check(bool(f), "latency table '{}': cannot open", path);
  json j = json::parse(f, nullptr, false);
  check(!j.is_discarded(), "latency table '{}': not valid JSON", path);
  return latency_table_from_json(j, path);
}

LatencyTable mac_estimate_latency_table(const std::vector<models::QuantLayer>& layers) {
  LatencyTable t;
  t.measured = false;
  t.source = "ESTIMATE (not measured): MACs / assumed rate, fp32 & fp16 25, int8 50, int4 55 GMAC/s";
  const std::pair<Precision, double> rates[] = {
      {Precision::fp32, 25e9}, {Precision::fp16, 25e9}, {Precision::int8, 50e9}, {Precision::int4, 55e9}};
  for (const auto& l : layers)
    for (const auto& [p, rate] : rates) t.ms[l.name][p] = 1e3 * double(l.macs) / rate;
  return t;
}

double config_latency_ms(const LatencyTable& t, const std::vector<std::string>& layers,
                         const std::vector<Precision>& p) {
  check(layers.size() == p.size(), "config latency: {} layers, {} precisions", layers.size(), p.size());
  double ms = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    auto it = t.ms.find(layers[i]);
    check(it != t.ms.end(), "latency table ({}): no entry for layer '{}'", t.source, layers[i]);
    auto jt = it->second.find(p[i]);
    check(jt != it->second.end(), "latency table ({}): layer '{}' has no {} time", t.source, layers[i],
          precision_name(p[i]));
    ms += jt->second;
  }
  return ms;
}

}  // namespace mpq::quant
