#!/usr/bin/env python3
"""svg_pixels.py KIND PNG: checks what a plot netc drew shows, from the pixels
of its rendering (rsvg-convert FILE.svg -o FILE.png), not from its text.

  training   the thick train-loss curve (matplotlib blue) falls from its
             left end to its right end inside the left panel; the test
             accuracy curve (green), if any, rises in the right panel
  confusion K  the matrix (found by its grey grid lines) has K x K cells
             and every diagonal cell is darker than the others of its row
  grid       the sampled images are drawn: many shades of grey

Prints one line per finding; exit status 1 if one fails. Standard library
only (a PNG decoder for 8-bit RGB/RGBA, non-interlaced)."""
import struct
import sys
import zlib


def read_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and color in (2, 6) and interlace == 0, "unsupported PNG"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    channels = 4 if color == 6 else 3
    raw, stride = zlib.decompress(idat), width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x * channels:x * channels + 3]) for x in range(width)])
        prev = line
    return rows


def near(p, color, tolerance=24):
    return all(abs(a - b) <= tolerance for a, b in zip(p, color))


def ends(points):
    """Mean y of the leftmost and rightmost tenth of (x, y) points."""
    xs = sorted(x for x, _ in points)
    lo, hi = xs[0] + (xs[-1] - xs[0]) * 0.1, xs[-1] - (xs[-1] - xs[0]) * 0.1
    left = [y for x, y in points if x <= lo]
    right = [y for x, y in points if x >= hi]
    return sum(left) / len(left), sum(right) / len(right)


def training(img):
    width, ok = len(img[0]), True
    top = 70  # the panels start below the title and the legends
    blue = [(x, y) for y in range(top, len(img)) for x in range(width // 2)
            if near(img[y][x], (0x1f, 0x77, 0xb4), 12)]
    green = [(x, y) for y in range(top, len(img)) for x in range(width // 2, width)
             if near(img[y][x], (0x2c, 0xa0, 0x2c), 12)]
    if len(blue) < 50:
        print("train loss curve: not found")
        return False
    first, last = ends(blue)
    print("train loss falls:", "yes" if last > first else "NO", f"({len(blue)} pixels)")
    ok = last > first
    if green:
        first, last = ends(green)
        print("test accuracy rises:", "yes" if last < first else "NO")
        ok = ok and last < first
    return ok


def confusion(img, classes):
    def line(p):  # the cells' grey borders (#ccc, blended by the renderer)
        return p[0] == p[1] == p[2] and 180 <= p[0] <= 235
    col_counts = [sum(line(img[y][x]) for y in range(len(img))) for x in range(len(img[0]))]
    row_counts = [sum(line(p) for p in row) for row in img]
    cols = [x for x, c in enumerate(col_counts) if c > 0.2 * max(col_counts)]
    rows = [y for y, c in enumerate(row_counts) if c > 0.2 * max(row_counts)]
    def lines(values):  # distinct grid lines (runs of adjacent pixels)
        out = []
        for v in values:
            if not out or v > out[-1][-1] + 1:
                out.append([v])
            else:
                out[-1].append(v)
        return [sum(r) / len(r) for r in out]
    xs, ys = lines(cols), lines(rows)
    k = min(len(xs), len(ys)) - 1
    if k != classes:
        print(f"confusion matrix: {k} x {k} cells found, not {classes} x {classes}")
        return False
    def darkness(i, j):  # a point inside the cell, off its centred number
        x = int(xs[j] + (xs[j + 1] - xs[j]) * 0.2)
        y = int(ys[i] + (ys[i + 1] - ys[i]) * 0.2)
        return 765 - sum(img[y][x])
    good = sum(all(darkness(i, i) > darkness(i, j) for j in range(k) if j != i) for i in range(k))
    print(f"confusion matrix: {k} x {k} cells, diagonal darkest in {good} of {k} rows")
    return good == k


def image_grid(img):
    greys = {p[0] for row in img for p in row if p[0] == p[1] == p[2]}
    print("image grid:", "drawn" if len(greys) > 30 else "NOT drawn", f"({len(greys)} greys)")
    return len(greys) > 30


if __name__ == "__main__":
    kind, path = sys.argv[1], sys.argv[2]
    image = read_png(path)
    if kind == "confusion":
        sys.exit(0 if confusion(image, int(sys.argv[3])) else 1)
    check = {"training": training, "grid": image_grid}[kind]
    sys.exit(0 if check(image) else 1)
