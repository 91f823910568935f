#!/usr/bin/python3
"""PyTorch goldens for the C++ ResNet50 / MobileNetV2 (torchvision layouts), with no weight file committed.

Weights and inputs come from a closed formula that models/cnn_common.cpp (formula_init, formula_input)
implements identically: for a tensor NAME with n elements, t[i] = a + b * sin(i * 0.37 + phase),
phase = 0.1 * (sum_j (j + 1) * byte_j(NAME) mod 997), computed in float64 then rounded to float32, with
(a, b) = running_mean (0, 0.1); running_var (0.75, 0.25); 1-D '.weight' (BN gamma) (1, 0.2); '.bias' (0, 0.1);
>= 2-D weights (0, sqrt(3 / fan_in)). Input x[i] = 1.5 * sin(i * 0.11 + 0.5), shape [N, 3, H, W].
The networks run in eval mode (BN with the formula running stats).

Usage (Debian's torch 1.13 lives in the system python):
  /usr/bin/python3 tests/gen_golden_cnn.py    # writes tests/golden/{resnet50,mobilenetv2}_tv_2x64.npy (eval)
                                               # and mobilenetv2_tv_2x96_train.npy (train-mode BN, 2x3x96x96)
  /usr/bin/python3 tests/gen_golden_cnn.py --full --mpq build-cnn/mpq
      # full size: writes /tmp/mpq_golden/{NET}.safetensors + input_224.npy, runs `mpq infer` on them and
      # prints the max relative error (max |diff| / max |logit|) per network; exit status 1 if > 1e-4.
"""
import argparse
import json
import math
import os
import struct
import subprocess
import sys

import numpy as np
import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))


def phase(name):
    return 0.1 * (sum((j + 1) * b for j, b in enumerate(name.encode())) % 997)


def formula(name, shape):
    n = int(np.prod(shape)) if len(shape) else 1
    if name.endswith("running_mean"):
        a, b = 0.0, 0.1
    elif name.endswith("running_var"):
        a, b = 0.75, 0.25
    elif name.endswith(".weight") and len(shape) == 1:
        a, b = 1.0, 0.2
    elif name.endswith(".bias"):
        a, b = 0.0, 0.1
    else:
        a, b = 0.0, math.sqrt(3.0 / (n / shape[0]))
    i = np.arange(n, dtype=np.float64)
    return (a + b * np.sin(i * 0.37 + phase(name))).astype(np.float32).reshape(shape)


def formula_input(n, h, w):
    i = np.arange(n * 3 * h * w, dtype=np.float64)
    return (np.sin(i * 0.11 + 0.5) * 1.5).astype(np.float32).reshape(n, 3, h, w)


def build(net):
    m = {"resnet50": torchvision.models.resnet50, "mobilenetv2": torchvision.models.mobilenet_v2}[net]()
    sd = {}
    for k, v in m.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        sd[k] = torch.from_numpy(formula(k, tuple(v.shape)))
    m.load_state_dict(sd, strict=False)
    return m.eval(), sd


def logits(m, x):
    with torch.no_grad():
        return m(torch.from_numpy(x)).numpy().astype(np.float32)


def write_safetensors(path, sd):
    header, blobs, off = {}, [], 0
    for k, v in sd.items():
        b = v.contiguous().numpy().astype("<f4").tobytes()
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--mpq", default=os.path.join(HERE, "..", "build-cnn", "mpq"))
    ap.add_argument("--dir", default="/tmp/mpq_golden")
    a = ap.parse_args()
    torch.set_num_threads(2)
    worst = 0.0
    for net in ("resnet50", "mobilenetv2"):
        m, sd = build(net)
        if not a.full:
            y = logits(m, formula_input(2, 64, 64))
            out = os.path.join(HERE, "golden", f"{net}_tv_2x64.npy")
            np.save(out, y)
            print(f"{net} eval: wrote {out} {y.shape}, max |logit| {np.abs(y).max():.4g}")
            if net == "mobilenetv2":
                # Train mode (BN batch statistics, biased variance), dropout off (the C++ net has none).
                # Only MobileNetV2: with formula weights ResNet50's train-mode forward is ill-conditioned
                # (PyTorch f32 vs f64 differ by 6-28% relative), so no meaningful 1e-4 golden exists for it.
                m.train()
                m.classifier[0].p = 0.0
                y = logits(m, formula_input(2, 96, 96))
                out = os.path.join(HERE, "golden", f"{net}_tv_2x96_train.npy")
                np.save(out, y)
                print(f"{net} train: wrote {out} {y.shape}, max |logit| {np.abs(y).max():.4g}")
            continue
        os.makedirs(a.dir, exist_ok=True)
        w = os.path.join(a.dir, f"{net}.safetensors")
        xin = os.path.join(a.dir, "input_224.npy")
        yout = os.path.join(a.dir, f"{net}_mpq_logits.npy")
        write_safetensors(w, sd)
        x = formula_input(2, 224, 224)
        np.save(xin, x)
        ref = logits(m, x)
        subprocess.run([a.mpq, "infer", "--model", net, "--weights", w, "--input", xin, "--output", yout], check=True)
        got = np.load(yout)
        rel = float(np.abs(got - ref).max() / np.abs(ref).max())
        worst = max(worst, rel)
        print(f"{net} 224x224: max rel err {rel:.3g} (max |logit| {np.abs(ref).max():.4g}, "
              f"argmax agree {(got.argmax(1) == ref.argmax(1)).all()})")
    if a.full and worst > 1e-4:
        sys.exit(1)


if __name__ == "__main__":
    main()
