#!/usr/bin/env bash
# Side-by-side batch-1 latency of our runtime and ONNX Runtime 1.30 (the peer of ../shared/peers), measured
# the way a shared machine requires: alternating ours and theirs (A B A B ...) for ROUNDS rounds, then the
# median of each side's per-round medians and their ratio (ours / ORT; < 1 means we are faster).
#
#   scripts/bench_vs_ort.sh MODEL PRECISION [ROUNDS]        MODEL: resnet50 | mobilenetv2 | bert
#                                                           PRECISION (ours): fp32 fp16 bf16 int8 int4
# Environment: THREADS (2), RUNS (30: timed runs per round on each side), ORT_PRECISION (the peer model:
# fp32 or int8; default int8 for our int8/int4, fp32 otherwise: ONNX Runtime's CPU provider has no
# fp16/bf16 kernels to compare with), MPQ (build/mpq), PEERS_DIR (/tmp/mpq-peers, built by
# ../shared/peers/setup.sh), OMP_WAIT_POLICY (passive unless set: on a machine shared with other work,
# libgomp's spinning threads slow ours several-fold, e.g. MobileNetV2 146 ms spinning vs 21 ms passive
# under a load of 4 on 2 cores; set it to active on an idle machine to measure spinning).
#
# Ours:  $MPQ bench --model MODEL --precision PRECISION --threads THREADS --runs RUNS --json [--seq 128]
#        (one JSON object with median_ms; random weights, BERT-base 12/768/12/3072 at sequence 128)
# ORT:   node $PEERS_DIR/bench_ort.js ONNX RUNS 3 THREADS   (ONNX: {resnet50,mobilenet_v2}_{fp32,int8qdq},
#        bert_base_{fp32,int8dyn}: BERT-base 12/768/12/3072, sequence 128, random weights)
# Output: one line per round, then a summary line and one JSON object (ours_ms, ort_ms, ratio, per round).
set -euo pipefail

usage() {
  sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
[[ $# -ge 2 && $# -le 3 ]] || usage
model=$1 prec=$2 rounds=${3:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
threads=${THREADS:-2}
runs=${RUNS:-30}
mpq=${MPQ:-$root/build/mpq}
peers=${PEERS_DIR:-/tmp/mpq-peers}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

case $prec in
  fp32 | fp16 | bf16) ort_prec=${ORT_PRECISION:-fp32} ;;
  int8 | int4) ort_prec=${ORT_PRECISION:-int8} ;;
  *) echo "bench_vs_ort: unknown precision '$prec' (expected fp32, fp16, bf16, int8 or int4)" >&2; exit 2 ;;
esac
[[ $ort_prec == fp32 || $ort_prec == int8 ]] || { echo "bench_vs_ort: ORT_PRECISION must be fp32 or int8" >&2; exit 2; }
extra=()
case $model in
  resnet50) onnx=resnet50_${ort_prec/int8/int8qdq}.onnx ;;
  mobilenetv2) onnx=mobilenet_v2_${ort_prec/int8/int8qdq}.onnx ;;
  bert) onnx=bert_base_${ort_prec/int8/int8dyn}.onnx; extra=(--seq 128) ;;
  *) echo "bench_vs_ort: unknown model '$model' (expected resnet50, mobilenetv2 or bert)" >&2; exit 2 ;;
esac
onnx=$peers/onnx/$onnx
[[ -x $mpq ]] || { echo "bench_vs_ort: $mpq not found (build it: cmake --build build --target mpq)" >&2; exit 1; }
[[ -f $onnx && -f $peers/bench_ort.js ]] ||
  { echo "bench_vs_ort: $onnx not found (run ../shared/peers/setup.sh first)" >&2; exit 1; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "bench_vs_ort: ROUNDS must be a positive integer, got '$rounds'" >&2; exit 2; }

# median_ms of the first JSON object with that field on stdin; fails loudly on anything else
median_of() { /usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
    line = line.strip()
    if line.startswith("{"):
        j = json.loads(line)
        if "median_ms" in j: print(round(float(j["median_ms"]), 3)); sys.exit(0)
        sys.exit("no median_ms in: " + line)
sys.exit("no JSON object in the output")'; }

echo "# $(date -u +%FT%TZ) $(uptime | sed 's/.*load/load/')"
echo "# ours: $mpq bench --model $model --precision $prec --threads $threads --runs $runs --json ${extra[*]}" \
  "(OMP_WAIT_POLICY=$OMP_WAIT_POLICY)"
echo "# ORT:  node $peers/bench_ort.js $onnx $runs 3 $threads"
ours=() ort=()
for ((r = 1; r <= rounds; ++r)); do
  if ! out=$("$mpq" bench --model "$model" --precision "$prec" --threads "$threads" --runs "$runs" --json \
    "${extra[@]}" 2>&1); then
    echo "bench_vs_ort: ours failed: $out" >&2
    exit 1
  fi
  a=$(median_of <<<"$out")
  if ! out=$(node "$peers/bench_ort.js" "$onnx" "$runs" 3 "$threads" 2>/dev/null); then
    echo "bench_vs_ort: ORT failed: $out" >&2
    exit 1
  fi
  b=$(median_of <<<"$out")
  ours+=("$a") ort+=("$b")
  printf 'round %d: ours %s ms  ORT %s ms\n' "$r" "$a" "$b"
done

/usr/bin/python3 - "$model" "$prec" "$ort_prec" "$threads" "${ours[*]}" "${ort[*]}" <<'EOF'
import json, statistics, sys
model, prec, ort_prec, threads, ours, ort = sys.argv[1:]
ours = [float(x) for x in ours.split()]
ort = [float(x) for x in ort.split()]
a, b = statistics.median(ours), statistics.median(ort)
print(f"{model} ours {prec} {a:.2f} ms  ORT {ort_prec} {b:.2f} ms  ratio ours/ORT {a / b:.2f} "
      f"(medians of {len(ours)} alternating rounds, {threads} threads)")
print(json.dumps({"model": model, "precision": prec, "ort_precision": ort_prec, "threads": int(threads),
                  "rounds": len(ours), "ours_ms": round(a, 3), "ort_ms": round(b, 3), "ratio": round(a / b, 3),
                  "ours_rounds_ms": ours, "ort_rounds_ms": ort}))
EOF
