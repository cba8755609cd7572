#!/usr/bin/env python3
"""Draws bench/results.md's table as an SVG to read at a glance (issue 6).

    python3 bench/e2e/chart.py bench/results.md bench/results.svg

One row per figure (a table cell "a / b" gives two rows): a bar for the ratio on a log scale centred on
1x (right of the line: Gazelle# better, left: the kernel better), the target as a tick, and both
measured values written beside it. Green: target met (or better than the kernel when there is no
target); amber: better than the kernel but short of the target; red: worse than the kernel; grey: no
result. Plain SVG text, no packages beyond Python's standard library.
"""
import html
import math
import re
import sys

LO, HI = 0.01, 100.0  # ratio axis, log scale


def parse(md):
    """Rows of the results table: (label, kernel, gazelle, ratio or None, target or None), and the date line."""
    rows, date = [], ""
    for line in md.splitlines():
        if line.startswith("Date "):
            date = line.strip()
        if not line.startswith("| ") or line.startswith("| workload") or line.startswith("| ---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 5:
            continue
        label, kernel, gazelle, ratio, target = cells[:5]
        ks, gs, rs = (c.split(" / ") for c in (kernel, gazelle, ratio))
        m = re.match(r"(.*?)(\S+) / (\S+)(.*)", label)
        names = [label] if len(rs) == 1 or not m else [m.group(1) + m.group(2) + m.group(4), m.group(1) + m.group(3) + m.group(4)]
        t = re.match(r">=\s*([0-9.]+)x", target)
        for i, name in enumerate(names):
            r = rs[i] if i < len(rs) else "-"
            rv = float(r.rstrip("x")) if re.match(r"^[0-9.]+x$", r) else None
            k = ks[i] if i < len(ks) and not kernel.startswith("failed") else kernel if kernel.startswith("failed") else "-"
            g = gs[i] if i < len(gs) and not gazelle.startswith("failed") else gazelle if gazelle.startswith("failed") else "-"
            rows.append((name, k, g, rv, float(t.group(1)) if t else None))
    return rows, date


def x_of(r, x0, width):
    r = min(max(r, LO), HI)
    return x0 + (math.log10(r) - math.log10(LO)) / (math.log10(HI) - math.log10(LO)) * width


def svg(rows, date):
    label_w, bar_x, bar_w, value_w, row_h, top = 430, 440, 420, 330, 30, 70
    width = bar_x + bar_w + value_w
    height = top + row_h * len(rows) + 50
    one = x_of(1, bar_x, bar_w)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="13">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           '<text x="10" y="22" font-size="16" font-weight="bold">Kernel (loopback) vs Gazelle# (memif): ratio, right of 1x = Gazelle# better</text>',
           f'<text x="10" y="42" fill="#555">{html.escape(date)}  |  bar: ratio (log scale)  |  tick: target  |  values: kernel / Gazelle#</text>']
    for tick in (0.01, 0.1, 1, 10, 100):
        x = x_of(tick, bar_x, bar_w)
        out.append(f'<line x1="{x:.1f}" y1="{top - 8}" x2="{x:.1f}" y2="{top + row_h * len(rows)}" stroke="{"#000" if tick == 1 else "#ddd"}"/>')
        out.append(f'<text x="{x:.1f}" y="{top - 12}" text-anchor="middle" fill="#555">{tick:g}x</text>')
    for i, (name, k, g, r, target) in enumerate(rows):
        y = top + i * row_h
        out.append(f'<text x="{label_w}" y="{y + 19}" text-anchor="end">{html.escape(name)}</text>')
        if r is None:
            colour, text = "#999", "no ratio"
            out.append(f'<text x="{one + 6:.1f}" y="{y + 19}" fill="{colour}">{text}</text>')
        else:
            colour = "#c0392b" if r < 1 else "#2e8b57" if target is None or r >= target else "#e0a100"
            x = x_of(r, bar_x, bar_w)
            left, w = (x, one - x) if r < 1 else (one, x - one)
            out.append(f'<rect x="{left:.1f}" y="{y + 6}" width="{max(w, 1.5):.1f}" height="{row_h - 12}" fill="{colour}"/>')
            tx = one + 4 if r < 1 else left + w + 4  # a bar left of 1x has its figure just right of the line
            out.append(f'<text x="{tx:.1f}" y="{y + 19}" font-weight="bold" fill="{colour if r < 1 else "#000"}">{r:g}x</text>')
        if target is not None:
            tx = x_of(target, bar_x, bar_w)
            out.append(f'<line x1="{tx:.1f}" y1="{y + 2}" x2="{tx:.1f}" y2="{y + row_h - 2}" stroke="#000" stroke-width="2" stroke-dasharray="3,2"/>')
        out.append(f'<text x="{bar_x + bar_w + 10}" y="{y + 19}" fill="#333">{html.escape(k)} / {html.escape(g)}</text>')
    legend_y = top + row_h * len(rows) + 30
    for j, (c, t) in enumerate((("#2e8b57", "target met"), ("#e0a100", "better than the kernel, short of the target"), ("#c0392b", "worse than the kernel"))):
        lx = 10 + j * 300
        out.append(f'<rect x="{lx}" y="{legend_y - 11}" width="12" height="12" fill="{c}"/><text x="{lx + 18}" y="{legend_y}">{t}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: chart.py results.md results.svg")
    rows, date = parse(open(sys.argv[1], encoding="utf-8").read())
    if not rows:
        sys.exit(f"{sys.argv[1]}: no results table")
    open(sys.argv[2], "w", encoding="utf-8").write(svg(rows, date))


if __name__ == "__main__":
    main()
