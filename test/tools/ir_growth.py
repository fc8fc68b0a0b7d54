"""Checks that a module grows linearly with the model and that no function
grows with it (LLVM's passes take time quadratic in a function's length).
usage: ir_growth.py SMALL.ll LARGE.ll FACTOR
FACTOR: how many times larger the second model is. Fails unless the
largest function of LARGE.ll is at most 1.1x SMALL.ll's and the whole
module at most FACTOR times as long."""
import re
import sys


def shape(path):
    text = open(path).read()
    longest, name, count = 0, "", 0
    for m in re.finditer(r"^define [^@]*@([^(]+)\(.*?^}", text, re.M | re.S):
        lines = m.group(0).count("\n")
        if lines > longest:
            longest, name = lines, m.group(1)
    return text.count("\n"), longest, name


small, large, factor = sys.argv[1], sys.argv[2], float(sys.argv[3])
s_total, s_longest, s_name = shape(small)
l_total, l_longest, l_name = shape(large)
print(f"{small}: {s_total} lines, longest function {s_name} ({s_longest} lines)")
print(f"{large}: {l_total} lines, longest function {l_name} ({l_longest} lines)")
ok = l_longest <= 1.1 * s_longest and l_total <= factor * s_total
print("linear" if ok else "NOT linear")
sys.exit(0 if ok else 1)
