#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets added for issue 13 from the real files: excerpts of
../shared/data (labels.txt, SST-2 dev), the committed BERT (config.json, vocab.txt) and tests/golden. Small on
purpose (a few KB per target). The JPEG seeds are crops of a real ImageNet image re-encoded with libjpeg-turbo
(4:2:0, 4:4:4, 4:2:2 progressive, grey) plus one whole real image; they are committed as made, not by this script.
Usage: python3 fuzz/make_corpus.py   (from the source root)"""
import json
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "data")
OUT = os.path.join(ROOT, "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def head(path, n):
    with open(path, encoding="utf-8") as f:
        return "".join(f.readline() for _ in range(n))


# labels.txt: the real first lines, then lines naming the fuzzer's scratch files (a.JPEG, sub/b.JPEG, links)
labels = head(os.path.join(SHARED, "imagenet-val-1300", "labels.txt"), 8)
put("fuzz_labels", "real_head.txt", labels)
put("fuzz_labels", "scratch.txt", "# comment\na.JPEG 472\nsub/b.JPEG 0\n\nin_link.JPEG 999\r\n")
put("fuzz_labels", "escapes.txt", "../outside.JPEG 1\nout_link.JPEG 2\nup/images/a.JPEG 3\n/etc/passwd 4\n")

# SST-2: the real first dev lines
put("fuzz_sst2", "dev_head.tsv", head(os.path.join(SHARED, "sst2", "dev.tsv"), 12))
put("fuzz_sst2", "crlf.tsv", "1\ta fine , funny film .\r\n\n0\t-lrb- dull -rrb- .\r\n")

# vocab.txt + tokenizer: "VOCAB\0TEXT"
bert = os.path.join(ROOT, "models", "weights", "bert-sst2")
vocab = head(os.path.join(bert, "vocab.txt"), 120)
sentence = head(os.path.join(SHARED, "sst2", "dev.tsv"), 1).split("\t", 1)[1]
put("fuzz_vocab", "bert_head.txt", vocab + "\0" + sentence)
put("fuzz_vocab", "unicode.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\ncaf\n##e\n\xe4\xb8\xad\n\0Caf\u00e9 \u4e2d\u56fd!! na\u00efve")

# BERT config.json: the committed model's and the golden tiny model's
for name, path in [("bert_sst2.json", os.path.join(bert, "config.json")),
                   ("bert_tiny.json", os.path.join(ROOT, "tests", "golden", "bert_tiny", "config.json"))]:
    with open(path) as f:
        put("fuzz_bert_config", name, f.read())

# --config for the committed BERT: every quantizable layer (quant_layers order of models/bert.cpp)
layers = []
for i in range(2):
    p = f"bert.encoder.layer.{i}."
    layers += [p + "attention.self.query", p + "attention.self.key", p + "attention.self.value",
               p + "attention.self.qk", p + "attention.self.pv", p + "attention.output.dense",
               p + "intermediate.dense", p + "output.dense"]
layers += ["bert.pooler.dense", "classifier"]
precs = ["int8", "int4", "fp16", "bf16", "fp32"]
entries = []
for k, name in enumerate(layers):
    prec = precs[k % len(precs)]
    e = {"name": name, "precision": prec, "weight_group": 32 if prec == "int4" and k % 2 else 0}
    if prec in ("int8", "int4"):
        ops = [0, 1] if name.endswith((".qk", ".pv")) else [0]
        e["inputs"] = [{"operand": o, "scale": 0.0235 + 0.001 * k, "zero_point": 128 - o} for o in ops]
    entries.append(e)
cfg = {"format": "mpq-quant-config", "version": 1, "model": "bert",
       "weights": {"path": "models/weights/bert-sst2/model.safetensors", "size": 3740616, "mtime_ns": 0,
                   "head_tail_fnv1a64": "0123456789abcdef"},
       "layers": entries}
put("fuzz_quant_config", "bert_mixed.json", json.dumps(cfg, indent=1))

# latency table of the same layers
put("fuzz_latency_table", "bert.json", json.dumps(
    {"source": "measured on this machine", "measured": True,
     "layers": {n: {"fp32": 0.02 * (k + 1), "fp16": 0.015, "bf16": 0.014, "int8": 0.009, "int4": 0.011}
                for k, n in enumerate(layers[:6])}}, indent=1))

# analysis cache payloads, one per kind, in the store() envelope
inputs = {"model": "bert", "indices": [0, 1, 2], "settings": {"draws": 2}}
payloads = {
    "traces": {"trace": [1.5, 0.25, 3e-5], "std_error": [0.1, 0.01, 1e-6], "draws": 16, "converged": True},
    "calibration": {layers[0]: {"0": {"scale": 0.02, "zero_point": 128, "lo": -2.56, "hi": 2.54,
                                      "observer": "minmax", "error": {"minmax": 0.1, "percentile": 0.2}}}},
    "dependencies": {"precision": "int8", "base": "fp16", "layers": layers[:3], "base_loss": 0.41,
                     "single": [0.001, 0.002, -0.0005], "pairs": [{"i": 0, "j": 1, "dl_pair": 0.004,
                                                                    "interaction": 0.001}],
                     "evaluations": 7, "seconds": 1.25},
    "metric_memo": {"configs": {"hh8": 0.78, "884": 0.74}, "hits": {"hh8": "0110"}},
}
for kind, p in payloads.items():
    put("fuzz_cache", kind + ".json", json.dumps({"kind": kind, "inputs": inputs, "payload": p}, indent=1))


# safetensors interpreted by the models: a conv1 + bn1 + fc file with metadata, and the golden tiny BERT
def safetensors(tensors, metadata):
    header, data = {"__metadata__": metadata}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def f32(n, base=0.1):
    return struct.pack(f"<{n}f", *[base * (i % 7 - 3) for i in range(n)])


unit = {"conv1.weight": ("F32", [4, 3, 3, 3], f32(108)), "conv1.bias": ("F32", [4], f32(4)),
        "bn1.weight": ("F32", [4], f32(4, 1)), "bn1.bias": ("F32", [4], f32(4)),
        "bn1.running_mean": ("F32", [4], f32(4)), "bn1.running_var": ("F16", [4], struct.pack("<4e", 1, 1, 1, 1)),
        "fc.weight": ("F32", [3, 4], f32(12)), "fc.bias": ("F32", [3], f32(3))}
put("fuzz_st_meta", "resnet_unit.safetensors", safetensors(unit, {"layout": "keras", "bn_eps": "0.001"}))
put("fuzz_st_meta", "mobilenet_meta.safetensors", safetensors({"features.0.0.bias": ("F32", [2], f32(2))},
                                                              {"layout": "tflite", "model": "mobilenetv2"}))
# the fuzzer's micro BERT (vocab 4, hidden 4, 1 layer, 1 head, ffn 4, 4 positions, 1 token type, 2 labels), with
# TF-era LayerNorm gamma / beta names in the encoder layer and one F16 tensor
V, D, F, P, T, C = 4, 4, 4, 4, 1, 2
bert_t = {"bert.embeddings.word_embeddings.weight": [V, D], "bert.embeddings.position_embeddings.weight": [P, D],
          "bert.embeddings.token_type_embeddings.weight": [T, D], "bert.embeddings.LayerNorm.weight": [D],
          "bert.embeddings.LayerNorm.bias": [D]}
pre = "bert.encoder.layer.0."
for lin, shape in [("attention.self.query", [D, D]), ("attention.self.key", [D, D]), ("attention.self.value", [D, D]),
                   ("attention.output.dense", [D, D]), ("intermediate.dense", [F, D]), ("output.dense", [D, F])]:
    bert_t[pre + lin + ".weight"] = shape
    bert_t[pre + lin + ".bias"] = shape[:1]
for ln in ["attention.output.LayerNorm", "output.LayerNorm"]:
    bert_t[pre + ln + ".gamma"] = [D]
    bert_t[pre + ln + ".beta"] = [D]
bert_t.update({"bert.pooler.dense.weight": [D, D], "bert.pooler.dense.bias": [D], "classifier.weight": [C, D],
               "classifier.bias": [C]})
tensors = {}
for name, shape in bert_t.items():
    n = 1
    for d in shape:
        n *= d
    tensors[name] = ("F16", shape, struct.pack(f"<{n}e", *[0.5] * n)) if name == "classifier.bias" else \
        ("F32", shape, f32(n))
put("fuzz_st_meta", "micro_bert.safetensors", safetensors(tensors, {"format": "pt"}))

# CLI argv (NUL-separated)
for name, argv in {"eval.txt": ["eval", "--model", "resnet50", "--limit", "200", "--threads", "2"],
                   "search.txt": ["search", "--model=bert", "--confidence", "0.975", "--quiet", "--range", "1e-2"],
                   "bad.txt": ["x", "--limit", "4294967297", "--batch", "-3", "--limit", "7", "positional"]}.items():
    put("fuzz_cli", name, "\0".join(argv[1:]))

# tfjs shards: model.json files naming the fuzzer's scratch shards (inside, sub-folder, links, escapes)
def tfjs(paths):
    return json.dumps({"format": "layers-model",
                       "modelTopology": {"class_name": "Sequential",
                                         "config": {"layers": [{"class_name": "Dense", "config": {"name": "d"}}]}},
                       "weightsManifest": [{"paths": paths, "weights": [
                           {"name": "d/kernel", "shape": [2, 2], "dtype": "float32"},
                           {"name": "d/bias", "shape": [2], "dtype": "float32"}]}]})


put("fuzz_tfjs_shards", "inside.json", tfjs(["w.bin"]))
put("fuzz_tfjs_shards", "two_halves.json", tfjs(["half.bin", "half.bin"]))
put("fuzz_tfjs_shards", "links.json", tfjs(["sub/w2.bin", "in_link.bin", "out_link.bin"]))
put("fuzz_tfjs_shards", "escapes.txt", "../outside.bin\nup/outside.bin\n/etc/passwd\nsub/../w.bin\ndir.bin\n")
