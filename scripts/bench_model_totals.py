#!/usr/bin/env python3
"""Per-model GEMM totals from bench_model_shapes' JSON output.

    build/bench_model_shapes --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
        --benchmark_format=json --benchmark_out=shapes.json --benchmark_out_format=json
    scripts/bench_model_totals.py shapes.json

For every model (name prefix: bert, rn50, mnv2), precision and implementation: the sum over the model's
shapes of count x median time (the GEMM part of one batch-1 inference, nothing else), the effective GOP/s
and % of the quoted / measured peak over that sum, and, per precision, "best" = per shape the faster of
the implementations measured (what a per-layer choice between ours and oneDNN would give). Rows missing
shapes of the model (int4 groups of 128 need K % 128 == 0) say so. The CPU-time columns use the cpuGOP/s
counter (bench/bench_util.h): the rate without the time other processes held the cores.
"""
import collections
import json
import sys

# 2-core peaks (GOP/s), bench/bench_util.h: (quoted, measured by bench_peak)
PEAKS = {"q8": (1650, 926), "q8s": (1650, 926), "q4": (1650, 926), "q4g128": (1650, 926),
         "f16": (416, 231), "f32": (416, 231), "bf16": (800, 467)}
MODELS = {"bert": "BERT-base seq 128", "rn50": "ResNet50 224", "mnv2": "MobileNetV2 224 (1x1 convs)"}
TO_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def main(path):
    with open(path) as f:
        data = json.load(f)
    # rows[(model, prec)][impl][shape] = (ms, gop, count, cpu_ms)
    rows = collections.defaultdict(lambda: collections.defaultdict(dict))
    shapes = collections.defaultdict(set)
    for b in data["benchmarks"]:
        if b.get("aggregate_name", "median") != "median" or b.get("error_occurred"):
            continue
        shape, prec, impl = b["run_name"].split("/")[:3]
        model = shape.split("_")[0]
        ms = b["real_time"] * TO_MS[b["time_unit"]]
        gop = b["GOP/s"] * ms * 1e-3  # ops of one call, 1e9
        cpu_ms = gop / b["cpuGOP/s"] * 1e3 if b.get("cpuGOP/s") else float("nan")
        rows[(model, prec)][impl][shape] = (ms, gop, int(b.get("n", 1)), cpu_ms)
        shapes[model].add(shape)
    print("| model | precision | implementation | GEMM total ms | GOP/s | % quoted peak | % measured peak "
          "| CPU-time GOP/s | % measured peak (CPU time) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (model, prec), impls in sorted(rows.items()):
        best = {}
        for impl, per in impls.items():
            for shape, v in per.items():
                if shape not in best or v[0] < best[shape][0]:
                    best[shape] = v
        table = sorted(impls.items()) + ([("best of the above per shape", best)] if len(impls) > 1 else [])
        for impl, per in table:
            ms = sum(v[0] * v[2] for v in per.values())
            gop = sum(v[1] * v[2] for v in per.values())
            cpu_ms = sum(v[3] * v[2] for v in per.values())
            rate, cpu_rate = gop / ms * 1e3, gop / cpu_ms * 1e3
            q, m = PEAKS.get(prec, (float("nan"), float("nan")))
            partial = "" if set(per) == shapes[model] else f" (only {len(per)} of {len(shapes[model])} shapes)"
            print(f"| {MODELS.get(model, model)} | {prec} | {impl}{partial} | {ms:.2f} | {rate:.0f} | "
                  f"{100 * rate / q:.0f} % | {100 * rate / m:.0f} % | {cpu_rate:.0f} | {100 * cpu_rate / m:.0f} % |")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
