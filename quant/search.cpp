#include "quant/search.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "core/error.h"
#include "core/file_io.h"
#include "models/io/common.h"

namespace mpq::quant {

using nlohmann::json;

bool AccuracyRange::ok(double metric, double reference) const { return metric >= threshold(reference); }

double AccuracyRange::threshold(double reference) const {
  validate();
  return max_drop ? reference - *max_drop : reference * *min_relative;
}

std::string AccuracyRange::describe() const {
  if (max_drop) return fmt::format("metric >= reference - {}", *max_drop);
  if (min_relative) return fmt::format("metric >= reference * {}", *min_relative);
  return "no range";
}

void AccuracyRange::validate() const {
  check(bool(max_drop) != bool(min_relative), "accuracy range: set exactly one of --max-drop and --min-relative");
  if (max_drop)
    check(std::isfinite(*max_drop) && *max_drop >= 0,
          "accuracy range: --max-drop {} must be >= 0 (absolute metric points below the reference)", *max_drop);
  if (min_relative)
    check(std::isfinite(*min_relative) && *min_relative > 0 && *min_relative <= 1,
          "accuracy range: --min-relative {} must be in (0, 1] (a fraction of the reference metric)", *min_relative);
}

namespace {

void check_perm(const std::vector<int>& order, int n, const char* what) {
  check(int(order.size()) == n, "search: {} has {} entries for {} layers", what, order.size(), n);
  std::set<int> seen(order.begin(), order.end());
  check(int(seen.size()) == n && (n == 0 || (*seen.begin() == 0 && *seen.rbegin() == n - 1)),
        "search: {} is not a permutation of [0, {})", what, n);
}

// Warn about every pair of probes with k1 < k2 and metric(k2) > metric(k1) + tol where at least one of the
// two is outside the range: there the bisection's decision rests on monotonicity. (Noise among probes that
// are all inside the range does not change the outcome and is not reported.)
void monotone_warnings(const std::vector<Probe>& probes, int stage, double tol, std::vector<std::string>& out) {
  for (const Probe& a : probes)
    for (const Probe& b : probes)
      if (a.stage == stage && b.stage == stage && a.k < b.k && b.metric > a.metric + tol && !(a.ok && b.ok))
        out.push_back(
            fmt::format("stage {}: non-monotone probes: k = {} scored {:.6g} but k = {} (more layers "
                        "lowered) scored {:.6g}",
                        stage, a.k, a.metric, b.k, b.metric));
}

int ceil_log2(int64_t v) {  // smallest e with 2^e >= v
  int e = 0;
  while ((int64_t(1) << e) < v) ++e;
  return e;
}

// `from` with the first k layers of `order` set to `to`.
std::vector<Precision> lowered(const std::vector<Precision>& from, const std::vector<int>& order, int k, Precision to) {
  std::vector<Precision> p = from;
  for (int i = 0; i < k; ++i) p[size_t(order[size_t(i)])] = to;
  return p;
}

// A configuration the bisection's result admits, with its bytes and table latency.
struct Cand {
  int k8, k4;
  std::vector<Precision> p;
  double bytes = 0, ms = 0;
};

// (k8, 0) for k8 in [0, k8_max], then (k8_max, k4) for k4 in [1, k4_max]: most lowered last.
std::vector<Cand> candidates(const std::vector<Precision>& base, const std::vector<int>& order8, int k8_max,
                             const std::vector<Precision>& s1, const std::vector<int>& int8_layers, int k4_max,
                             const SearchOptions& opt) {
  std::vector<Cand> cands;
  for (int k8 = 0; k8 <= k8_max; ++k8) cands.push_back({k8, 0, lowered(base, order8, k8, Precision::int8)});
  for (int k4 = 1; k4 <= k4_max; ++k4) cands.push_back({k8_max, k4, lowered(s1, int8_layers, k4, Precision::int4)});
  for (Cand& c : cands) {
    if (opt.bytes) c.bytes = opt.bytes(c.p);
    if (opt.latency) c.ms = opt.latency(c.p);
  }
  return cands;
}

// a is preferred over b: the objective first, the other quantity second, then the more lowered. With the
// latency objective and a latency_tolerance, every configuration within (1 + tolerance) of `fastest_ms` (the
// fastest candidate's latency) counts as fast, a fast one beats a slow one, and among fast ones the fewer
// bytes win (SearchOptions::latency_tolerance).
bool better(const Cand& a, const Cand& b, const SearchOptions& opt, double fastest_ms) {
  if (opt.objective == Objective::latency && opt.latency && opt.latency_tolerance > 0) {
    const double limit = fastest_ms * (1 + opt.latency_tolerance);
    const bool fa = a.ms <= limit, fb = b.ms <= limit;
    if (fa != fb) return fa;
    if (fa && a.bytes != b.bytes) return a.bytes < b.bytes;
  }
  if (opt.objective == Objective::bytes) {
    if (a.bytes != b.bytes) return a.bytes < b.bytes;
    if (opt.latency && a.ms != b.ms) return a.ms < b.ms;
  } else {
    if (opt.latency && a.ms != b.ms) return a.ms < b.ms;
    if (a.bytes != b.bytes) return a.bytes < b.bytes;
  }
  return a.k8 + a.k4 > b.k8 + b.k4;
}

// A configuration's standing for `better` (k8: layers below the start precision, k4: int4 layers).
Cand standing(const std::vector<Precision>& p, Precision start, const SearchOptions& opt) {
  Cand c{0, 0, p};
  for (Precision q : p) c.k8 += q != start, c.k4 += q == Precision::int4;
  if (opt.bytes) c.bytes = opt.bytes(p);
  if (opt.latency) c.ms = opt.latency(p);
  return c;
}

// One search's bookkeeping: memoised evaluations, the probe log, the bisection of a stage, the final check
// and the fill.
struct Searcher {
  const ConfigMetric& metric;
  const SearchOptions& opt;
  int64_t max_total = 0;  // the most evaluations this search can take (for progress)
  double fastest_ms = 0;  // the fastest candidate within max_bytes (latency_tolerance's anchor)
  SearchResult r;
  std::map<std::vector<Precision>, double> memo;

  double eval(const std::vector<Precision>& p) {
    auto it = memo.find(p);
    if (it != memo.end()) return it->second;
    const double v = metric(p);
    // -infinity is a verdict (the configuration produced non-finite outputs: outside every range); NaN or
    // +infinity can only be a bug of the metric
    check(!std::isnan(v) && v != std::numeric_limits<double>::infinity(), "search: {} is not a number ({})",
          opt.metric_name, v);
    ++r.evaluations;
    return memo[p] = v;
  }

  void record(const Probe& p) {
    r.probes.push_back(p);
    if (opt.progress) opt.progress(p, r.evaluations, max_total);
  }

  // largest k in [0, kmax] inside the range, assuming k = 0 is inside (it is the previous stage's result).
  // The end point k = kmax is probed first: when it is inside, it is the answer (one evaluation), and a metric
  // that dips in the middle but recovers at the end cannot hide it; otherwise bisection on [0, kmax).
  int bisect(int stage, const std::vector<Precision>& from, const std::vector<int>& order, int kmax, Precision to) {
    if (kmax == 0) return 0;
    const double m_end = eval(lowered(from, order, kmax, to));
    const bool end_ok = opt.range.ok(m_end, r.reference);
    record({stage, kmax, m_end, end_ok});
    if (end_ok) return kmax;
    int lo = 0, hi = kmax;
    while (hi - lo > 1) {
      const int mid = lo + (hi - lo) / 2;
      const double m = eval(lowered(from, order, mid, to));
      const bool ok = opt.range.ok(m, r.reference);
      record({stage, mid, m, ok});
      (ok ? lo : hi) = mid;
    }
    monotone_warnings(r.probes, stage, opt.monotone_tol, r.warnings);
    return lo;
  }

  void final_check(const Cand& c) {
    r.precisions = c.p, r.k8 = c.k8, r.k4 = c.k4;
    if (opt.recheck) {
      r.final_metric = opt.recheck(c.p);
      check(!std::isnan(r.final_metric), "search: re-check {} is not a number", opt.metric_name);
      ++r.evaluations;
      r.final_rechecked = true;
    } else {
      r.final_metric = eval(c.p);  // memoised when the configuration was a probe (or the start)
    }
    r.final_ok = opt.range.ok(r.final_metric, r.reference);
    record({3, c.k8, r.final_metric, r.final_ok});
  }

  // SearchOptions::fill, after a final check that passed: each stage's order is walked once more from its
  // first layer, and every layer still at the stage's source precision (start for stage 1, int8 for stage 2)
  // is lowered alone on top of the configuration so far when that improves the objective (`better`) and
  // keeps the metric inside the range. A layer the bisection already found outside (the one after its
  // prefix) is memoised and costs nothing. Probes are stage 5 (to int8) / 6 (to int4), k = the layer's
  // 1-based position in the order. The filled configuration gets its own final check; when that fails, the
  // bisection's configuration stays.
  void fill(const std::vector<int>& order8, const std::vector<int>& order4) {
    const Cand verified{r.k8, r.k4, r.precisions};
    std::vector<Precision> cur = r.precisions;
    const auto pass = [&](int stage, const std::vector<int>& order, Precision from, Precision to) {
      for (size_t pos = 0; pos < order.size(); ++pos) {
        const int i = order[pos];
        if (cur[size_t(i)] != from) continue;
        std::vector<Precision> next = cur;
        next[size_t(i)] = to;
        if (!better(standing(next, opt.start, opt), standing(cur, opt.start, opt), opt, fastest_ms)) continue;
        const double m = eval(next);
        const bool ok = opt.range.ok(m, r.reference);
        record({stage, int(pos) + 1, m, ok});
        if (!ok) continue;
        cur = std::move(next);
        r.filled.push_back(i);
      }
    };
    pass(5, order8, opt.start, Precision::int8);
    if (opt.stage2) pass(6, order4, Precision::int8, Precision::int4);
    if (r.filled.empty()) return;
    final_check(standing(cur, opt.start, opt));
    if (r.final_ok) return;
    r.warnings.push_back(
        fmt::format("fill: the re-check of the filled configuration scored {:.6g}, outside the range; keeping the "
                    "bisection's (k8 {}, k4 {})",
                    r.final_metric, verified.k8, verified.k4));
    r.filled.clear();
    final_check(verified);
  }
};

}  // namespace

SearchResult bisection_search(int n, const std::vector<int>& order8, const std::vector<int>& order4,
                              const ConfigMetric& metric, const SearchOptions& opt) {
  opt.range.validate();
  check(n >= 0, "search: {} layers", n);
  check_perm(order8, n, "order8");
  if (opt.stage2) check_perm(order4, n, "order4");
  check(!opt.max_bytes || bool(opt.bytes), "search: max_bytes needs the bytes of a configuration");
  check(opt.objective != Objective::bytes || bool(opt.bytes),
        "search: the bytes objective needs the bytes of a configuration");
  Searcher s{metric, opt};
  SearchResult& r = s.r;
  // most evaluations: start + per stage (its end point + a bisection of [0, N)) + one final check of an unprobed
  // candidate (+ with the fill: one probe per layer and stage, and the filled configuration's final check)
  const int64_t per_stage = 1 + ceil_log2(n);
  const int64_t stages = opt.stage2 ? 2 : 1;
  s.max_total = 1 + per_stage * stages + 1 + (opt.fill ? int64_t(n) * stages + 1 : 0);
  const std::vector<Precision> base(size_t(n), opt.start);
  r.baseline = s.eval(base);
  r.reference = opt.reference.value_or(r.baseline);
  const bool start_ok = opt.range.ok(r.baseline, r.reference);
  check(start_ok,
        "the accuracy range ({} >= {:.4g}: {} with reference {:.4g}) is missed by the starting configuration "
        "itself (every layer {}: {} {:.4g} on the search split); no lowering can meet it, widen the range",
        opt.metric_name, opt.range.threshold(r.reference), opt.range.describe(), r.reference, precision_name(opt.start),
        opt.metric_name, r.baseline);
  s.record({0, 0, r.baseline, true});

  r.k8_max = s.bisect(1, base, order8, n, Precision::int8);
  const std::vector<Precision> s1 = lowered(base, order8, r.k8_max, Precision::int8);
  std::vector<int> int8_layers;  // order4 restricted to the int8 set
  if (opt.stage2 && r.k8_max > 0) {
    for (int i : order4)
      if (s1[size_t(i)] == Precision::int8) int8_layers.push_back(i);
    r.k4_max = s.bisect(2, s1, int8_layers, r.k8_max, Precision::int4);
  }

  const std::vector<Cand> cands = candidates(base, order8, r.k8_max, s1, int8_layers, r.k4_max, opt);
  auto fits = [&](const Cand& c) { return !opt.max_bytes || c.bytes <= *opt.max_bytes; };
  s.fastest_ms = std::numeric_limits<double>::infinity();
  for (const Cand& c : cands)
    if (fits(c)) s.fastest_ms = std::min(s.fastest_ms, c.ms);
  auto pick = [&](const std::function<bool(const Cand&)>& allowed) -> const Cand* {
    const Cand* best = nullptr;
    for (const Cand& c : cands)
      if (allowed(c) && (!best || better(c, *best, opt, s.fastest_ms))) best = &c;
    return best;
  };
  const Cand* chosen = pick(fits);
  if (!chosen) {
    chosen = &cands.back();  // the most lowered: fewest bytes
    r.memory_ok = false;
    r.warnings.push_back(
        fmt::format("no configuration inside the range fits the memory limit of {:.0f} weight bytes: the smallest one "
                    "(k8 {}, k4 {}) needs {:.0f}",
                    *opt.max_bytes, chosen->k8, chosen->k4, chosen->bytes));
  }
  s.final_check(*chosen);
  if (!r.final_ok) {
    const Cand* fallback = pick([&](const Cand& c) {
      auto it = s.memo.find(c.p);
      return fits(c) && it != s.memo.end() && opt.range.ok(it->second, r.reference) && &c != chosen;
    });
    r.warnings.push_back(fmt::format(
        "final check: (k8 {}, k4 {}) scored {:.6g}, outside the range ({} >= {:.6g}){}", r.k8, r.k4, r.final_metric,
        opt.metric_name, opt.range.threshold(r.reference),
        fallback ? fmt::format("; taking (k8 {}, k4 {}) instead, which a probe verified", fallback->k8, fallback->k4)
                 : ""));
    if (fallback) s.final_check(*fallback);
  }
  if (opt.fill && r.final_ok) s.fill(order8, order4);
  if (opt.bytes) r.weight_bytes = opt.bytes(r.precisions);
  if (opt.latency) r.latency_ms = opt.latency(r.precisions);
  return r;
}

json SearchResult::to_json() const {
  json pr = json::array();
  for (const Probe& p : probes) pr.push_back({{"stage", p.stage}, {"k", p.k}, {"metric", p.metric}, {"ok", p.ok}});
  std::vector<std::string> prec;
  for (Precision p : precisions) prec.push_back(precision_name(p));
  return {{"k8", k8},
          {"k4", k4},
          {"k8_max", k8_max},
          {"k4_max", k4_max},
          {"reference", reference},
          {"baseline", baseline},
          {"final_metric", final_metric},
          {"final_ok", final_ok},
          {"final_rechecked", final_rechecked},
          {"probes", pr},
          {"evaluations", evaluations},
          {"warnings", warnings},
          {"precisions", prec},
          {"weight_bytes", weight_bytes},
          {"latency_ms", latency_ms ? json(*latency_ms) : json(nullptr)},
          {"memory_ok", memory_ok},
          {"filled", filled}};
}

MemoMetric::MemoMetric(ConfigMetric f)
    : f_([f = std::move(f)](const std::vector<Precision>& p) {
        return ConfigScore{f(p), {}};
      }) {}

MemoMetric MemoMetric::with_hits(ConfigScorer f) {
  MemoMetric m;
  m.f_ = std::move(f);
  return m;
}

const ConfigScore& MemoMetric::score(const std::vector<Precision>& p) {
  auto it = memo_.find(p);
  if (it != memo_.end()) {
    ++hits_;
    return it->second;
  }
  ConfigScore v = f_(p);
  ++fresh_;
  return memo_[p] = std::move(v);
}

double paired_standard_error(const std::string& a, const std::string& b) {
  check(a.size() == b.size(), "paired standard error: {} outcomes against {}", a.size(), b.size());
  const int64_t n = int64_t(a.size());
  if (n < 2) return 0;
  int64_t plus = 0, minus = 0;  // samples only a gets right / only b gets right
  for (int64_t i = 0; i < n; ++i) {
    check((a[size_t(i)] == '0' || a[size_t(i)] == '1') && (b[size_t(i)] == '0' || b[size_t(i)] == '1'),
          "paired standard error: outcome {} is not '0' or '1'", i);
    plus += a[size_t(i)] > b[size_t(i)];
    minus += a[size_t(i)] < b[size_t(i)];
  }
  const double nd = double(n), mean = double(plus - minus) / nd;
  // sum (d - mean)^2 = sum d^2 - n mean^2, with sum d^2 = plus + minus
  const double ss = std::max(0.0, double(plus + minus) - nd * mean * mean);
  return std::sqrt(ss / (nd * (nd - 1)));
}

double one_sided_z(double confidence) {
  check(std::isfinite(confidence) && confidence >= 0.5 && confidence < 1,
        "--confidence {} must be in [0.5, 1) (0.5: the plain estimate, 0.9: a one-sided 90 % bound)", confidence);
  if (confidence == 0.5) return 0;  // exactly: the plain estimate (the bisection below only approaches 0)
  double lo = 0, hi = 40;           // Phi(40) rounds to 1 in double
  for (int it = 0; it < 200; ++it) {
    const double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < confidence ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

namespace {
char precision_letter(Precision p) {
  switch (p) {
    case Precision::fp32:
      return '3';
    case Precision::fp16:
      return 'h';
    case Precision::bf16:
      return 'b';
    case Precision::int8:
      return '8';
    case Precision::int4:
      return '4';
  }
  return '?';
}
}  // namespace

ConfigMetric paired_lower_bound(MemoMetric& memo, std::vector<Precision> reference, double z, double unit) {
  check(std::isfinite(z) && z >= 0, "paired lower bound: z {} must be >= 0", z);
  return [&memo, reference = std::move(reference), z, unit](const std::vector<Precision>& p) {
    const ConfigScore& s = memo.score(p);
    if (s.nonfinite > 0) return -std::numeric_limits<double>::infinity();
    if (z == 0) return s.metric;
    const ConfigScore& ref = memo.score(reference);
    check(!s.hits.empty() && !ref.hits.empty(),
          "a confidence bound needs the per-sample outcomes of every configuration (this metric has none)");
    return s.metric - z * unit * paired_standard_error(s.hits, ref.hits);
  };
}

json MemoMetric::to_json() const {
  json c = json::object(), h = json::object(), nf = json::object();
  for (const auto& [p, v] : memo_) {
    std::string key;
    for (Precision q : p) key += precision_letter(q);
    c[key] = v.metric;
    if (!v.hits.empty()) h[key] = v.hits;
    if (v.nonfinite > 0) nf[key] = v.nonfinite;
  }
  return {{"configs", c}, {"hits", h}, {"nonfinite", nf}};
}

void MemoMetric::merge_json(const json& j, size_t layers, size_t samples) {
  check(j.is_object() && j.contains("configs") && j["configs"].is_object(), "metric memo: field 'configs' missing");
  const Precision all[] = {Precision::fp32, Precision::fp16, Precision::bf16, Precision::int8, Precision::int4};
  const json no_hits = json::object();
  const json& hits = j.contains("hits") ? j["hits"] : no_hits;
  check(hits.is_object(), "metric memo: field 'hits' is not an object");
  std::map<std::vector<Precision>, ConfigScore> add;  // merged only when the whole memo is well-formed
  for (const auto& [key, v] : j["configs"].items()) {
    check(layers == 0 || key.size() == layers, "metric memo: configuration '{}' has {} letters for {} layers", key,
          key.size(), layers);
    std::vector<Precision> p;
    for (char ch : key) {
      const Precision* q =
          std::find_if(std::begin(all), std::end(all), [&](Precision x) { return precision_letter(x) == ch; });
      check(q != std::end(all), "metric memo: configuration '{}' has an unknown precision letter '{}'", key, ch);
      p.push_back(*q);
    }
    check(v.is_number(), "metric memo: configuration '{}' has no number", key);
    ConfigScore s{v.get<double>(), {}, 0};
    if (j.contains("nonfinite") && j["nonfinite"].is_object() && j["nonfinite"].contains(key)) {
      check(j["nonfinite"][key].is_number_integer(), "metric memo: nonfinite of '{}' is not an integer", key);
      s.nonfinite = j["nonfinite"][key].get<int64_t>();
    }
    if (hits.contains(key)) {
      check(hits[key].is_string(), "metric memo: the hits of configuration '{}' are not a string", key);
      s.hits = hits[key].get<std::string>();
      check(samples == 0 || s.hits.size() == samples, "metric memo: configuration '{}' has {} outcomes for {} samples",
            key, s.hits.size(), samples);
      check(s.hits.find_first_not_of("01") == std::string::npos,
            "metric memo: the outcomes of configuration '{}' are not all '0' or '1'", key);
    }
    add[std::move(p)] = std::move(s);
  }
  for (auto& [p, s] : add) memo_[p] = std::move(s);
}

SweepResult sweep_k(const std::vector<Precision>& base, const std::vector<int>& order, Precision target,
                    const ConfigMetric& metric, const AccuracyRange& range, const std::vector<int>& ks,
                    std::optional<double> reference) {
  range.validate();
  check(order.size() <= base.size(), "sweep: order has {} entries for {} layers", order.size(), base.size());
  std::vector<int> grid = ks;
  if (grid.empty())
    for (int k = 0; k <= int(order.size()); ++k) grid.push_back(k);
  check(grid[0] == 0, "sweep: the k grid must start at 0 (the reference), starts at {}", grid[0]);
  for (size_t i = 1; i < grid.size(); ++i)
    check(grid[i] > grid[i - 1] && grid[i] <= int(order.size()),
          "sweep: the k grid must ascend within [0, {}]; entry {} is {}", order.size(), i, grid[i]);
  SweepResult s;
  std::vector<Precision> p = base;
  double baseline = 0;
  bool prefix = true;
  int lowered = 0;  // layers of `order` already set to `target` in p
  for (int k : grid) {
    for (; lowered < k; ++lowered) p[size_t(order[size_t(lowered)])] = target;
    const double m = metric(p);
    if (k == 0) baseline = reference.value_or(m);
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

void check_max_bytes(double max_bytes, const BytesTable& bytes, const std::string& model) {
  check(std::isfinite(max_bytes) && max_bytes > 0, "--max-bytes {}: expected a positive number of bytes", max_bytes);
  double smallest = bytes.fixed;
  for (const auto& l : bytes.layer) {
    double m = std::numeric_limits<double>::infinity();
    for (const auto& [p, b] : l) m = std::min(m, b);
    smallest += l.empty() ? 0.0 : m;
  }
  check(max_bytes >= smallest,
        "--max-bytes {:.0f} is below the smallest footprint of {}'s {} quantizable layers ({:.0f} bytes, every layer "
        "at its smallest precision): no configuration fits",
        max_bytes, model, bytes.layer.size(), smallest);
}

double BytesTable::operator()(const std::vector<Precision>& p) const {
  check(p.size() == layer.size(), "bytes table: {} precisions for {} layers", p.size(), layer.size());
  double b = fixed;
  for (size_t i = 0; i < p.size(); ++i) {
    auto it = layer[i].find(p[i]);
    check(it != layer[i].end(), "bytes table: layer {} has no {} size", i, precision_name(p[i]));
    b += it->second;
  }
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

LatencyTable parse_latency_table(std::string_view text, const std::string& what) {
  const size_t depth = io::json_nesting_depth(text);
  check(depth <= io::kMaxJsonDepth, "latency table '{}': JSON nests {} levels deep (limit {})", what, depth,
        io::kMaxJsonDepth);
  json j = json::parse(text, nullptr, false);
  check(!j.is_discarded(), "latency table '{}': not valid JSON", what);
  return latency_table_from_json(j, what);
}

LatencyTable load_latency_table(const std::string& path) {
  return parse_latency_table(read_text_file(path, kMaxJsonFileBytes, "latency table"), path);
}

LatencyTable mac_estimate_latency_table(const std::vector<models::QuantLayer>& layers) {
  LatencyTable t;
  t.measured = false;
  t.source = "ESTIMATE (not measured): MACs / assumed rate, fp32 & fp16 & bf16 25, int8 50, int4 55 GMAC/s";
  const std::pair<Precision, double> rates[] = {{Precision::fp32, 25e9},
                                                {Precision::fp16, 25e9},
                                                {Precision::bf16, 25e9},
                                                {Precision::int8, 50e9},
                                                {Precision::int4, 55e9}};
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
