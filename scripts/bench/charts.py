"""SVG bar charts for docs/BENCHMARKS.md, with the Python standard library only (used by report.py).

The charts are meant to be read on GitHub (an <img> of the file, so no scripts, no external
fonts or styles) and on paper: a white background (GitHub's dark mode would otherwise show black
text on black), series told apart by lightness and by a hatch pattern as well as by hue, a
<title> and a <desc> that states every plotted number for screen readers, and every bar labelled
with its value so that nothing has to be read off an axis.
"""
import math
import os
import xml.dom.minidom
from xml.sax.saxutils import escape, quoteattr

FONT = "-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif"
INK = "#222222"
MUTED = "#555555"
GRID = "#dddddd"
WIDTH = 900

# Fill, and whether a hatch is drawn over it. The lightness steps (about 27 %, 67 % and 92 %
# grey) keep the series apart when printed in black and white; the hatch marks the seed's
# programs whatever the printer does with colour.
STYLES = {
    "wif": ("#1f4e79", False),
    "nginx": ("#f0a030", False),
    "seed": ("#ececec", True),
    "wif-total": ("#7fa7cf", True),
    "baseline": ("#9dbfe3", False),
}


def char_width(size):
    """A generous average glyph width: the viewer's font is unknown, so text is laid out wide."""
    return 0.6 * size


def nice_ticks(top, count=6):
    """Round axis ticks from 0 to at least top: steps of 1, 2, 2.5 or 5 times a power of ten."""
    if top <= 0:
        return [0, 1]
    raw = top / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    n = math.ceil(top / step - 1e-9)
    return [i * step for i in range(n + 1)]


def tick_label(v, step):
    """A tick's value with as many decimals as the step needs (0.25 → two)."""
    decimals = 0
    while decimals < 4 and abs(step * 10 ** decimals - round(step * 10 ** decimals)) > 1e-9:
        decimals += 1
    return f"{v:,.{decimals}f}"


class Svg:
    """A minimal SVG document: shapes and text appended in drawing order."""

    def __init__(self, width, height, title, desc):
        self.width, self.height = width, height
        self.title, self.desc = title, desc
        self.parts = []

    def add(self, element):
        self.parts.append(element)

    def rect(self, x, y, w, h, fill, extra=""):
        self.add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
                 f'fill="{fill}"{extra}/>')

    def line(self, x1, y1, x2, y2, stroke, width=1, extra=""):
        self.add(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}" '
                 f'stroke-width="{width}"{extra}/>')

    def text(self, x, y, s, size=12, anchor="start", fill=INK, weight=None, extra=""):
        bold = f' font-weight="{weight}"' if weight else ""
        self.add(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"'
                 f'{bold}{extra}>{escape(s)}</text>')

    def bar(self, x, y, w, h, style, tooltip):
        """A bar with its series' fill, hatch and outline, and a tooltip for viewers that show one."""
        fill, hatch = STYLES[style]
        self.add(f"<g><title>{escape(tooltip)}</title>")
        self.rect(x, y, w, h, fill, f' stroke="{INK}" stroke-width="0.8"')
        if hatch:
            self.rect(x, y, w, h, "url(#hatch)")
        self.add("</g>")

    def reference(self, x1, x2, y1, y2=None):
        """A dashed black reference mark over a white halo, readable over any fill."""
        y2 = y1 if y2 is None else y2
        self.line(x1, y1, x2, y2, "#ffffff", 4.5)
        self.line(x1, y1, x2, y2, "#000000", 2, ' stroke-dasharray="5 3"')

    def whisker(self, x, y_lo, y_hi):
        """The range over runs: an I-beam over a white halo, readable over a dark bar."""
        for colour, width in (("#ffffff", 3.5), (INK, 1.2)):
            self.line(x, y_lo, x, y_hi, colour, width)
            for y in (y_lo, y_hi):
                self.line(x - 4, y, x + 4, y, colour, width)

    def render(self):
        head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.width}" height="{self.height:.0f}" '
                f'viewBox="0 0 {self.width} {self.height:.0f}" role="img" aria-labelledby="chart-title chart-desc" '
                f'font-family={quoteattr(FONT)}>')
        defs = ('<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
                'patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="#555555" '
                'stroke-width="1.6"/></pattern></defs>')
        return "\n".join([
            '<?xml version="1.0" encoding="UTF-8"?>', head,
            f'<title id="chart-title">{escape(self.title)}</title>',
            f'<desc id="chart-desc">{escape(self.desc)}</desc>', defs,
            f'<rect width="{self.width}" height="{self.height:.0f}" fill="#ffffff"/>',
            *self.parts, "</svg>", ""])


def header(svg, title, subtitle):
    """Title and subtitle at the top; returns the y below them."""
    svg.text(20, 28, title, 17, weight="bold")
    svg.text(20, 48, subtitle, 12, fill=MUTED)
    return 62


def legend(svg, y, items, x0=20, right=WIDTH - 20):
    """One row (wrapping if needed) of legend items (kind, style, label); returns the y below it.

    kind is "bar" (a swatch of the series' style), "ref" (the dashed reference mark) or
    "range" (the whisker of the range over runs)."""
    x, size = x0, 12
    for kind, style, label in items:
        w = 26 + len(label) * char_width(size) + 18
        if x + w > right and x > x0:
            x, y = x0, y + 22
        if kind == "bar":
            fill, hatch = STYLES[style]
            svg.rect(x, y + 1, 16, 12, fill, f' stroke="{INK}" stroke-width="0.8"')
            if hatch:
                svg.rect(x, y + 1, 16, 12, "url(#hatch)")
        elif kind == "ref":
            svg.reference(x - 1, x + 19, y + 7)
        else:
            svg.line(x + 8, y, x + 8, y + 14, INK, 1.2)
            svg.line(x + 4, y, x + 12, y, INK, 1.2)
            svg.line(x + 4, y + 14, x + 12, y + 14, INK, 1.2)
        svg.text(x + 24, y + 12, label, size)
        x += w
    return y + 26


def vertical_panel(svg, x, y, w, h, title, groups, axis_label, fmt):
    """Grouped vertical bars in the box (x, y, w, h): the plot, its y axis on the left, the group
    labels below. groups is [(label, [bar])], a bar a dict with style, name, value (None: no
    result), optional lo/hi (range over runs) and ref (a reference value drawn as a dashed mark
    across the bar)."""
    svg.text(x, y - 10, title, 13, weight="bold")
    values = [v for _, bars in groups for b in bars for v in (b.get("value"), b.get("hi"), b.get("ref"))
              if v is not None]
    ticks = nice_ticks(max(values) * 1.08 if values else 1)
    top = ticks[-1]
    step = ticks[1] - ticks[0]

    def ypos(v):
        return y + h - h * v / top

    for t in ticks:
        svg.line(x, ypos(t), x + w, ypos(t), GRID if t else INK, 1)
        svg.text(x - 6, ypos(t) + 4, tick_label(t, step), 11, "end", MUTED)
    svg.text(x - 48, y + h / 2, axis_label, 12, "middle",
             extra=f' transform="rotate(-90 {x - 48:.1f} {y + h / 2:.1f})"')
    group_w = w / len(groups)
    for gi, (label, bars) in enumerate(groups):
        gx = x + gi * group_w
        inner = group_w * 0.84
        bar_w = inner / len(bars)
        bx0 = gx + (group_w - inner) / 2
        for bi, b in enumerate(bars):
            bx = bx0 + bi * bar_w + bar_w * 0.08
            bw = bar_w * 0.84
            cx = bx + bw / 2
            v = b.get("value")
            if v is None:
                svg.text(cx, y + h - 6, "no result", 10, "middle", MUTED,
                         extra=f' transform="rotate(-90 {cx:.1f} {y + h - 30:.1f})"')
                continue
            svg.bar(bx, ypos(v), bw, y + h - ypos(v), b["style"], f"{b['name']}: {fmt(v)}")
            label_y = ypos(v) - 5
            if b.get("lo") is not None and b.get("hi") is not None and b["hi"] > b["lo"]:
                svg.whisker(cx, ypos(b["lo"]), ypos(b["hi"]))
                label_y = min(label_y, ypos(b["hi"]) - 5)
            if b.get("ref") is not None:
                ry = ypos(b["ref"])
                svg.reference(bx - 3, bx + bw + 3, ry)
                if label_y - 12 < ry < label_y + 4:  # the mark would cross the value: lift the value
                    label_y = ry - 6
            svg.text(cx, label_y, fmt(v), 11, "middle", weight="bold")
        svg.text(gx + group_w / 2, y + h + 18, label, 12, "middle")


def horizontal_chart(svg, y, rows, axis_label, fmt, ref=None):
    """Horizontal bars, one per row (name, style, value or None, note), names on the left, value
    at the end of the bar; ref, a value, draws a dashed vertical reference line.
    Returns the y below the axis label."""
    row_h, bar_h, size = 26, 16, 12
    label_w = max(len(name) for name, *_ in rows) * char_width(size) + 16
    x0 = 20 + label_w
    x1 = WIDTH - 80  # room for the value label of the longest bar
    values = [v for _, _, v, _ in rows if v is not None] + ([ref] if ref is not None else [])
    ticks = nice_ticks(max(values) * 1.02 if values else 1)
    top, step = ticks[-1], ticks[1] - ticks[0]

    def xpos(v):
        return x0 + (x1 - x0) * v / top

    plot_h = row_h * len(rows) + 6
    rx = xpos(ref) if ref is not None else None
    for t in ticks:
        svg.line(xpos(t), y, xpos(t), y + plot_h, GRID if t else INK, 1)
        svg.text(xpos(t), y + plot_h + 16, tick_label(t, step), 11, "middle", MUTED)
    for i, (name, style, v, note) in enumerate(rows):
        ry = y + 6 + i * row_h
        svg.text(x0 - 8, ry + bar_h - 3, name, size, "end")
        if v is None:
            svg.text(x0 + 6, ry + bar_h - 3, note or "no result", 11, fill=MUTED)
            continue
        svg.bar(x0, ry, xpos(v) - x0, bar_h, style, f"{name}: {fmt(v)}")
        value = fmt(v) + (f"  {note}" if note else "")
        vx = xpos(v) + 6
        if rx is not None and xpos(v) - 3 <= rx <= vx + len(value) * char_width(11):
            vx = rx + 6  # the value after the reference line, not crossed by it
        svg.text(vx, ry + bar_h - 3, value, 11, weight="bold")
    if rx is not None:
        svg.reference(rx, rx, y, y + plot_h)
    svg.text((x0 + x1) / 2, y + plot_h + 36, axis_label, 12, "middle")
    return y + plot_h + 48


def footnote(svg, y, text):
    svg.text(20, y, text, 11, fill=MUTED)
    return y + 16


def save(svg, path):
    """Writes the chart and reads it back as XML, so that a malformed chart fails the report."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(svg.render())
    try:
        doc = xml.dom.minidom.parse(path)
    except Exception as e:  # noqa: BLE001  (expat raises several types)
        raise SystemExit(f"report.py: the chart {path} is not well-formed XML: {e}; this is a bug in "
                         "scripts/bench/charts.py")
    root = doc.documentElement
    if root.tagName != "svg" or not root.getElementsByTagName("title") or not root.getElementsByTagName("desc"):
        raise SystemExit(f"report.py: the chart {path} lacks its <svg>, <title> or <desc> element; this is a "
                         "bug in scripts/bench/charts.py")


def handshakes_chart(path, title, subtitle, new_groups, keep_groups, legend_items, desc, notes):
    """Chart (a): handshakes/s per TLS case on the left, keep-alive requests/s on the right."""
    svg = Svg(WIDTH, 0, title, desc)
    y = header(svg, title, subtitle)
    y = legend(svg, y, legend_items)
    top = y + 34
    plot_h = 290
    if new_groups:
        right = 600 if keep_groups else WIDTH - 20
        vertical_panel(svg, 90, top, right - 90, plot_h, "New connection per request (full mTLS handshake)",
                       new_groups, "handshakes per second", lambda v: f"{v:,.0f}")
    if keep_groups:
        left = 700 if new_groups else 90
        vertical_panel(svg, left, top, WIDTH - 20 - left, plot_h, "Keep-alive, TLS 1.3, P-256", keep_groups,
                       "requests per second", lambda v: f"{v:,.0f}")
    y = top + plot_h + 42
    for n in notes:
        y = footnote(svg, y, n)
    svg.height = y + 4
    save(svg, path)


def cpu_chart(path, title, subtitle, groups, legend_items, desc, notes=()):
    """Chart (b): server CPU ms per handshake, by case and server."""
    svg = Svg(WIDTH, 0, title, desc)
    y = header(svg, title, subtitle)
    y = legend(svg, y, legend_items)
    top = y + 34
    plot_h = 270
    vertical_panel(svg, 90, top, WIDTH - 110, plot_h, "New connection per request (full mTLS handshake)",
                   groups, "server CPU per handshake, ms", lambda v: f"{v:.2f}")
    y = top + plot_h + 42
    for n in notes:
        y = footnote(svg, y, n)
    svg.height = y + 4
    save(svg, path)


def pipeline_chart(path, title, subtitle, rows, legend_items, desc, axis_label, ref, notes=()):
    """Chart (c): CPU per pipeline tool and per comparison program, horizontal bars."""
    svg = Svg(WIDTH, 0, title, desc)
    y = header(svg, title, subtitle)
    y = legend(svg, y, legend_items)
    y = horizontal_chart(svg, y + 4, rows, axis_label, lambda v: f"{v:,.1f} ms", ref)
    for n in notes:
        y = footnote(svg, y, n)
    svg.height = y + 4
    save(svg, path)


def scaling_chart(path, title, subtitle, groups, legend_items, desc):
    """Chart (d): handshakes/s on one core and on two, by server."""
    svg = Svg(WIDTH, 0, title, desc)
    y = header(svg, title, subtitle)
    y = legend(svg, y, legend_items)
    top = y + 34
    plot_h = 260
    vertical_panel(svg, 90, top, WIDTH - 110, plot_h, "New connection per request, TLS 1.3, P-256", groups,
                   "handshakes per second", lambda v: f"{v:,.0f}")
    svg.height = top + plot_h + 34
    save(svg, path)


def timeline_chart(path, title, subtitle, panels, legend_items, desc, x_label, bin_s):
    """Chart (e): counts per time bin, one panel per mode, on one shared y scale. panels is
    [(title, [(style, name, counts)])]: the first series is drawn as a filled area, the others
    as filled areas over it (each a subset of the first)."""
    svg = Svg(WIDTH, 0, title, desc)
    y = header(svg, title, subtitle)
    y = legend(svg, y, legend_items)
    x0, x1, plot_h = 90, WIDTH - 30, 150
    n = max((len(c) for _, series in panels for _, _, c in series), default=1)
    top_v = max((max(c) if c else 0 for _, series in panels for _, _, c in series), default=1) or 1
    ticks = nice_ticks(top_v * 1.05)
    xticks = nice_ticks(n * bin_s, 10)

    def xpos(i):
        return x0 + (x1 - x0) * i / n

    for ptitle, series in panels:
        y += 30
        svg.text(x0, y - 10, ptitle, 13, weight="bold")
        ypos = lambda v, y=y: y + plot_h - plot_h * v / ticks[-1]  # noqa: E731
        for t in ticks:
            svg.line(x0, ypos(t), x1, ypos(t), GRID if t else INK, 1)
            svg.text(x0 - 6, ypos(t) + 4, tick_label(t, ticks[1] - ticks[0]), 11, "end", MUTED)
        for t in xticks:
            if t / bin_s <= n:
                svg.line(xpos(t / bin_s), y + plot_h, xpos(t / bin_s), y + plot_h + 4, INK, 1)
                svg.text(xpos(t / bin_s), y + plot_h + 16, tick_label(t, xticks[1] - xticks[0]), 11, "middle", MUTED)
        svg.text(x0 - 58, y + plot_h / 2, "per 100 ms", 12, "middle",
                 extra=f' transform="rotate(-90 {x0 - 58:.1f} {y + plot_h / 2:.1f})"')
        for style, name, counts in series:
            fill, _ = STYLES[style]
            points = [f"{xpos(0):.1f},{ypos(0):.1f}"]
            for i, c in enumerate(counts):
                points.append(f"{xpos(i):.1f},{ypos(c):.1f}")
                points.append(f"{xpos(i + 1):.1f},{ypos(c):.1f}")
            points.append(f"{xpos(len(counts)):.1f},{ypos(0):.1f}")
            svg.add(f'<g><title>{escape(name)}</title><polygon points="{" ".join(points)}" fill="{fill}" '
                    f'stroke="{fill}" stroke-width="0.6"/></g>')
        y += plot_h + 24
    svg.text((x0 + x1) / 2, y + 4, x_label, 12, "middle")
    svg.height = y + 16
    save(svg, path)


def remove_stale(path):
    """A chart this run could not draw must not survive from an older run."""
    if os.path.exists(path):
        os.remove(path)
