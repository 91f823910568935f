#!/usr/bin/env python3
"""Golden data for tests/test_bert.cpp: Hugging Face BertForSequenceClassification's forward, re-implemented in
plain PyTorch (no `transformers` here; same math, same parameter names), eval mode (no dropout), in float64 on
float32-rounded random weights. Writes tests/golden/bert_tiny/:
  model.safetensors  weights (f32, HF names)        config.json  HF config
  ids.npy            int64 [3, 10], 0 = [PAD]         logits.npy   f32 [3, 2]
  labels.npy         int64 [3]                        grads.safetensors  d(mean CE)/d(param) for a few params
Run: /usr/bin/python3 tests/gen_golden_bert.py   (torch 1.13, numpy)

Full-size check (not committed; BERT-base sizes 12/768/12/3072, vocab 30522, positions 512, HF's N(0, 0.02)
init, batch 2 x seq 128 with padding): writes the checkpoint to --dir, runs `mpq infer` on it and compares:
  /usr/bin/python3 tests/gen_golden_bert.py --full --mpq build/mpq
"""
import argparse
import subprocess
import json
import math
import os
import struct

import numpy as np
import torch

torch.manual_seed(1234)
CFG = dict(architectures=["BertForSequenceClassification"], model_type="bert", vocab_size=50, hidden_size=32,
           num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, hidden_act="gelu",
           hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, max_position_embeddings=16, type_vocab_size=2,
           layer_norm_eps=1e-12, num_labels=2)
V, D, NL, H, F, P, T, C = (CFG[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                            "intermediate_size", "max_position_embeddings", "type_vocab_size",
                                            "num_labels"))
EPS = CFG["layer_norm_eps"]
GRAD_NAMES = ["bert.embeddings.word_embeddings.weight", "bert.embeddings.token_type_embeddings.weight",
              "bert.encoder.layer.0.attention.self.query.weight", "bert.encoder.layer.0.attention.self.value.bias",
              "bert.encoder.layer.1.intermediate.dense.bias", "bert.encoder.layer.1.output.LayerNorm.weight",
              "bert.pooler.dense.bias", "classifier.weight"]


def shapes():
    out = [("bert.embeddings.word_embeddings.weight", (V, D)), ("bert.embeddings.position_embeddings.weight", (P, D)),
           ("bert.embeddings.token_type_embeddings.weight", (T, D)),
           ("bert.embeddings.LayerNorm.weight", (D,)), ("bert.embeddings.LayerNorm.bias", (D,))]
    for i in range(NL):
        p = f"bert.encoder.layer.{i}."
        for n, (o, k) in [("attention.self.query", (D, D)), ("attention.self.key", (D, D)),
                          ("attention.self.value", (D, D)), ("attention.output.dense", (D, D))]:
            out += [(p + n + ".weight", (o, k)), (p + n + ".bias", (o,))]
        out += [(p + "attention.output.LayerNorm.weight", (D,)), (p + "attention.output.LayerNorm.bias", (D,))]
        out += [(p + "intermediate.dense.weight", (F, D)), (p + "intermediate.dense.bias", (F,))]
        out += [(p + "output.dense.weight", (D, F)), (p + "output.dense.bias", (D,))]
        out += [(p + "output.LayerNorm.weight", (D,)), (p + "output.LayerNorm.bias", (D,))]
    out += [("bert.pooler.dense.weight", (D, D)), ("bert.pooler.dense.bias", (D,))]
    out += [("classifier.weight", (C, D)), ("classifier.bias", (C,))]
    return out


def init(std=0.2):
    w = {}
    for name, shp in shapes():
        if "LayerNorm.weight" in name:
            t = 1.0 + 0.1 * torch.randn(shp)
        elif name.endswith(".bias"):
            t = 0.1 * torch.randn(shp)
        else:
            t = std * torch.randn(shp)
        w[name] = t.float().double().requires_grad_(True)  # f32-rounded values, f64 math
    return w


def ln(x, w, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + EPS) * w + b


def lin(x, w, name):
    return x @ w[name + ".weight"].t() + w[name + ".bias"]


def forward(w, ids, mask):
    B, L = ids.shape
    x = (w["bert.embeddings.word_embeddings.weight"][ids] + w["bert.embeddings.position_embeddings.weight"][:L][None]
         + w["bert.embeddings.token_type_embeddings.weight"][0][None, None])
    x = ln(x, w["bert.embeddings.LayerNorm.weight"], w["bert.embeddings.LayerNorm.bias"])
    ext = (1.0 - mask[:, None, None, :].double()) * -10000.0  # HF get_extended_attention_mask (pre-4.27 value)
    dh = D // H
    for i in range(NL):
        p = f"bert.encoder.layer.{i}."
        heads = lambda t: t.view(B, L, H, dh).permute(0, 2, 1, 3)
        q, k, v = (heads(lin(x, w, p + "attention.self." + n)) for n in ("query", "key", "value"))
        s = q @ k.transpose(-1, -2) / math.sqrt(dh) + ext
        ctx = (torch.softmax(s, -1) @ v).permute(0, 2, 1, 3).reshape(B, L, D)
        h = ln(lin(ctx, w, p + "attention.output.dense") + x, w[p + "attention.output.LayerNorm.weight"],
               w[p + "attention.output.LayerNorm.bias"])
        f = lin(torch.nn.functional.gelu(lin(h, w, p + "intermediate.dense")), w, p + "output.dense")
        x = ln(f + h, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    pooled = torch.tanh(lin(x[:, 0], w, "bert.pooler.dense"))
    return lin(pooled, w, "classifier")


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, arr in tensors.items():
        a = np.ascontiguousarray(arr, dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        blobs.append(a.tobytes())
        off += a.nbytes
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "bert_tiny")
    os.makedirs(out, exist_ok=True)
    w = init()
    ids = torch.tensor([[2, 7, 19, 33, 4, 48, 11, 25, 9, 3],
                        [2, 14, 5, 40, 22, 31, 3, 0, 0, 0],
                        [2, 44, 17, 3, 0, 0, 0, 0, 0, 0]], dtype=torch.int64)
    mask = (ids != 0).long()
    labels = torch.tensor([1, 0, 1])
    logits = forward(w, ids, mask)
    loss = torch.nn.functional.cross_entropy(logits, labels)
    grads = torch.autograd.grad(loss, [w[n] for n in GRAD_NAMES])
    write_safetensors(os.path.join(out, "model.safetensors"), {n: t.detach().numpy() for n, t in w.items()})
    write_safetensors(os.path.join(out, "grads.safetensors"),
                      {n: g.numpy() for n, g in zip(GRAD_NAMES, grads)})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(CFG, f, indent=2)
    np.save(os.path.join(out, "ids.npy"), ids.numpy())
    np.save(os.path.join(out, "labels.npy"), labels.numpy())
    np.save(os.path.join(out, "logits.npy"), logits.detach().numpy().astype(np.float32))
    print("logits", logits.detach().numpy(), "loss", float(loss))


def full(mpq, out):
    global CFG, V, D, NL, H, F, P, T, C
    CFG = dict(CFG, vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
               intermediate_size=3072, max_position_embeddings=512)
    V, D, NL, H, F, P, T, C = (CFG[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers",
                                                "num_attention_heads", "intermediate_size",
                                                "max_position_embeddings", "type_vocab_size", "num_labels"))
    os.makedirs(out, exist_ok=True)
    with torch.no_grad():
        w = init(std=0.02)
        ids = torch.randint(5, V, (2, 128))
        ids[:, 0] = 2
        ids[1, 90:] = 0  # padding, masked
        logits = forward(w, ids, (ids != 0).long()).numpy()
    write_safetensors(os.path.join(out, "model.safetensors"), {n: t.detach().numpy() for n, t in w.items()})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(CFG, f, indent=2)
    np.save(os.path.join(out, "ids.npy"), ids.numpy())
    subprocess.run([mpq, "infer", "--model", "bert", "--weights", os.path.join(out, "model.safetensors"), "--input",
                    os.path.join(out, "ids.npy"), "--output", os.path.join(out, "ours.npy")], check=True)
    ours = np.load(os.path.join(out, "ours.npy"))
    rel = float(np.abs(ours - logits).max() / np.abs(logits).max())
    print(f"BERT-base full size: max |diff| / max |logit| = {rel:.2e}")
    return 0 if rel < 1e-4 else 1


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--mpq", default="build/mpq")
    ap.add_argument("--dir", default="/tmp/mpq_golden_bert")
    a = ap.parse_args()
    raise SystemExit(full(a.mpq, a.dir) if a.full else main())
