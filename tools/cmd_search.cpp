// `mpq search`: the mixed-precision search of docs/method.md on a CNN (ImageNet-style folder) or BERT (SST-2).
// The command parses its flags into a quant::SearchRequest, runs quant::run_search (quant/pipeline.h), writes
// the configuration and the report (quant/pipeline_report.h) and prints the outcome.
#include <cstdint>
#include <sstream>

#include "tools/cli.h"
#include "tools/native_run.h"
#include "tools/search_cli.h"

namespace mpq::cli {
namespace {

std::vector<quant::OrderKind> parse_orderings(const std::string& list) {
  std::vector<quant::OrderKind> kinds;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      kinds.push_back(quant::parse_order(item));
    } catch (const Error& e) {
      throw UsageError(std::string("--orderings: ") + e.what());
    }
  }
  usage_check(!kinds.empty(), "--orderings: empty list");
  return kinds;
}

// The request a command line describes; every value is range-checked here (usage errors, exit status 2).
quant::SearchRequest search_request(const Args& args) {
  quant::SearchRequest r;
  r.weights = args.require("weights");
  r.data = args.require("data");
  usage_check(args.has("max-drop") != args.has("min-relative"), "give exactly one of --max-drop and --min-relative");
  if (args.has("max-drop")) r.range.max_drop = args.get_double("max-drop", 0, 0, 100);  // percentage points
  if (args.has("min-relative")) r.range.min_relative = args.get_double("min-relative", 1, 1e-9, 1);
  r.seed = uint64_t(args.get_int("seed", 0, 0, INT64_MAX));
  r.int4_group = args.get_int("int4-group", 0, 0, 128);
  usage_check(r.int4_group == 0 || r.int4_group == 32 || r.int4_group == 64 || r.int4_group == 128,
              "--int4-group {}: expected 0 (per channel), 32, 64 or 128", r.int4_group);
  // --confidence C: inside only when the one-sided C lower bound of the search-split metric, paired against
  // the reference configuration on the same samples, is (quant/search.h paired_lower_bound); 0.5 = the plain
  // estimate of the paper's method
  r.confidence = args.get_double("confidence", 0.5, 0.5, 1);
  usage_check(r.confidence < 1, "--confidence {} must be in [0.5, 1)", args.get("confidence"));
  r.start = parse_precision(args.get_choice("start", "fp16", {"fp16", "bf16"}));
  r.reference = parse_precision(args.get_choice("reference", "fp32", {"fp32", "fp16"}));
  if (args.has("max-bytes")) r.max_bytes = args.get_double("max-bytes", 0, 1, 1e15);
  r.objective =
      parse_enum(quant::kObjectiveNames, args.get_choice("objective", "latency", {"latency", "bytes"}), "--objective");
  r.orderings = parse_orderings(args.get("orderings", "augmented,hessian,single,random"));
  r.engine =
      parse_enum(quant::kProbeEngineNames, args.get_choice("eval", "simulated", {"simulated", "native"}), "--eval");
  r.pareto_points = int(args.get_int("pareto-points", 9, 0, 100000));
  usage_check(r.pareto_points != 1, "--pareto-points 1: use 0 (every k) or >= 2");
  r.pareto = !args.flag("no-pareto");
  r.fill = args.flag("fill");
  r.latency_tolerance = args.get_double("latency-tolerance", 0, 0, 0.999);
  r.order_per_byte = args.get_choice("order-score", "sensitivity", {"sensitivity", "per-byte"}) == "per-byte";
  r.splits.calib = args.get_int("calib", -1, -1, INT32_MAX);
  r.splits.search = args.get_int("search", -1, -1, INT32_MAX);
  r.splits.test = args.get_int("test", -1, -1, INT32_MAX);
  r.splits.rounding = args.get_int("rounding-calib", -1, -1, INT32_MAX);
  r.rounding = rounding_option(args);
  r.splits.batch = args.get_int("batch", -1, -1, 65536);
  usage_check(r.splits.batch != 0, "option --batch 0 is out of range (-1 = default, or >= 1)");
  if (args.has("hessian-loss"))
    r.hessian_loss =
        parse_enum(quant::kHessianLossNames, args.get_choice("hessian-loss", "labels", {"labels", "distill"}), "loss");
  r.signed_interactions = args.flag("signed-interactions");
  r.draws = int(args.get_int("draws", 16, 1, 100000));
  r.dep_samples = args.get_int("dep-samples", 8, 1, INT32_MAX);
  r.window = int(args.get_int("window", 0, 0, 100000));
  r.latency_file = args.get("latency");
  r.estimate_latency = args.flag("estimate-latency");
  usage_check(!(r.estimate_latency && args.has("latency")), "give either --latency or --estimate-latency, not both");
  r.latency_runs = int(args.get_int("latency-runs", 10, 1, 100000));
  r.latency_seq = args.get_int("seq", 0, 0, 1 << 20);
  return r;
}

int run_search(const Args& args) {
  args.check_known({"model",         "weights",
                    "data",          "max-drop",
                    "min-relative",  "out",
                    "report",        "seed",
                    "json",          "calib",
                    "search",        "test",
                    "dep-samples",   "draws",
                    "window",        "latency",
                    "cache",         "batch",
                    "max-bytes",     "orderings",
                    "pareto-points", "no-pareto",
                    "order-score",   "reference",
                    "hessian-loss",  "signed-interactions",
                    "int4-group",    "estimate-latency",
                    "latency-runs",  "seq",
                    "eval",          "confidence",
                    "start",         "objective",
                    "rounding",      "rounding-calib",
                    "fill",          "latency-tolerance"});
  const std::string model = args.require("model"), out = args.require("out"), report = args.require("report");
  quant::SearchRequest r = search_request(args);
  r.cache_dir = args.get("cache", report + "/cache");
  return run_search_request(model, r, out, report, args.flag("json"));
}

const Registrar reg(
    {"search", "mixed-precision PTQ search (Hessian + inter-layer dependencies + bisection) with a Pareto report",
     "mpq search --model {resnet50,mobilenetv2,bert} --weights PATH --data DIR (--max-drop POINTS | --min-relative R)\n"
     "           --out config.json --report DIR [--seed S] [--threads N] [--json]\n"
     "  range:    --max-drop POINTS (>= 0, absolute percentage points of the metric) or --min-relative R (in (0, 1]),\n"
     "            against --reference fp32 (default: the original model) or fp16, measured on the search split;\n"
     "            --confidence C in [0.5, 1): inside only when the one-sided C lower bound of the metric (paired\n"
     "            against the reference on the same samples) is; 0.5 (default) = the plain estimate\n"
     "  start:    --start fp16 (default, the paper; docs/method.md) | bf16: the 16-bit precision every layer starts "
     "from and the\n"
     "            bisection lowers from (fp16 -> int8 -> int4, or bf16 -> int8 -> int4)\n"
     "  choice:   --objective latency (default: the fastest configuration inside the range) | bytes (the\n"
     "            smallest; ties broken by latency); --max-bytes B limits the stored bytes for either (weights,\n"
     "            scales, biases, activation parameters, tables: what `mpq export` writes); --fill: after the\n"
     "            bisections, walk each ordering once more and lower every further layer that improves the\n"
     "            objective and stays inside the range on the search split (one probe per layer tried);\n"
     "            --latency-tolerance F (default 0): with the latency objective, configurations within (1 + F)\n"
     "            of the fastest count as fast, and the smallest of them is taken\n"
     "  latency:  per-layer table measured with the native executor at fp32/fp16/bf16/int8/int4 (cached;\n"
     "            --latency-runs 10), or --latency latency.json from `mpq profile`, or --estimate-latency (a\n"
     "            MAC-based ESTIMATE); the chosen configuration and the uniform points are then measured end to end\n"
     "  splits:   --calib N --search N --test N (-1 = default, test 0 = all remaining; images 16/128/256,\n"
     "            SST-2 64 train sentences / half of dev / the other half)\n"
     "  rounding: --rounding gptq (default: second-order rounding of the int8 / int4 weights on samples in no\n"
     "            split, --rounding-calib 128 of them; quant/rounding.h) | nearest\n"
     "  analysis: --dep-samples 8 --draws 16 --window 0 --int4-group 0|32|64|128 --hessian-loss labels|distill\n"
     "            --signed-interactions --cache DIR (default REPORT/cache) --batch B\n"
     "  report:   --orderings augmented,hessian,single,random (the first one's configuration is written)\n"
     "            --order-score sensitivity | per-byte: order the layers by score, or by score per stored byte\n"
     "            the lowering saves (default: sensitivity, the paper's ordering)\n"
     "            --pareto-points 9 (k values per sweep; 0 = every k) --no-pareto\n"
     "  probes:   --eval simulated (fake-quant autograd forward, default) | native (each configuration compiled\n"
     "            and run by the native kernels)\n"
     "  --json prints one object: baseline_metric, metric (test split, percent), latency_ms, fp16_latency_ms,\n"
     "  bf16_latency_ms, fp32_latency_ms, reduction_vs_fp16/bf16/fp32, latency_source, evaluations, seconds, ...\n"
     "  exit status: 0, or 3 when the chosen configuration is outside the range on the test split (files are\n"
     "  written either way); 2 usage error, 1 runtime error",
     run_search});

}  // namespace
}  // namespace mpq::cli
