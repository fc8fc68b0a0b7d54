"""Writes the deep models of issue 13 as .nn files (bench/compile.sh times
them; test/e2e/deep-chain.test and test/llvm/linear-growth.test check them).
usage: make_deep.py chain|params|sum N > model.nn
  chain N:  N `linear(2, 2) -> relu` layers, then linear(2, 1)
  params N: N scalar parameters, y = p0 x + p1 x + ...
  sum N:    one parameter in an N-term sum, y = 1 a x + 2 a x + ..."""
import sys

kind, n = sys.argv[1], int(sys.argv[2])
if kind == "chain":
    print("data inline(x = [[0, 1], [1, 0], [1, 1], [0, 0]], y = [0, 1, 1, 0])")
    print("input x: f32[N, 2]")
    print("target y: f32[N]")
    layers = " -> ".join(["linear(2, 2) -> relu"] * n)
    print(f"scores = x -> {layers} -> linear(2, 1) -> flatten(0, 1)")
    print("loss mse(scores, y)")
    print("optimizer sgd(lr = 0.1)")
    print("train steps = 3, seed = 0")
    sys.exit(0)
print("data sine(points = 200, from = -pi, to = pi)")
print("input x: f32[N]")
print("target y: f32[N]")
if kind == "params":
    for i in range(n):
        print(f"param p{i} = randn()")
    print("y_pred = " + " + ".join(f"p{i} * x" for i in range(n)))
    print("loss mse(y_pred, y)")
    print("optimizer sgd(lr = 1e-6)")
elif kind == "sum":
    print("param a = randn()")
    print("y_pred = " + " + ".join(f"{i % 7 + 1} * a * x" for i in range(n)))
    print("loss mse(y_pred, y)")
    print("optimizer sgd(lr = 1e-9)")
else:
    sys.exit(f"make_deep.py: unknown kind '{kind}' (chain, params or sum)")
