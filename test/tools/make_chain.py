"""Writes a .nn model of N `linear(2, 2) -> relu` layers (issue 13's deep
chain: bench/compile.sh times it; test/e2e/deep-chain.test checks it).
usage: make_chain.py N > chain.nn"""
import sys

n = int(sys.argv[1])
print("data inline(x = [[0, 1], [1, 0], [1, 1], [0, 0]], y = [0, 1, 1, 0])")
print("input x: f32[N, 2]")
print("target y: f32[N]")
print("scores = x -> %s -> linear(2, 1) -> flatten(0, 1)" % " -> ".join(["linear(2, 2) -> relu"] * n))
print("loss mse(scores, y)")
print("optimizer sgd(lr = 0.1)")
print("train steps = 3, seed = 0")
