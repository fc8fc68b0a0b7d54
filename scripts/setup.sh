#!/usr/bin/env bash
# Sets netc up on a fresh Debian 12 machine and runs the main job:
# installs the Debian packages, builds netc into build/, installs the MNIST
# digits (data/mnist/), then compiles examples/sine.nn into ./build/sine and
# trains it.
#   scripts/setup.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
"$root/scripts/get-mnist.py"   # the real digits, into data/mnist/
echo
echo "== netc examples/sine.nn -o build/sine && build/sine"
"$root/build/bin/netc" "$root/examples/sine.nn" -o "$root/build/sine"
cd "$root/build"
./sine
