"""Renders a `tmux capture-pane -e -p` capture (ANSI SGR colours) to a PNG.
    python3 docs/ansi_to_png.py CAPTURE.ansi OUT.png"""
import re
import sys

from PIL import Image, ImageDraw, ImageFont

BASIC = [(0, 0, 0), (205, 49, 49), (13, 188, 121), (229, 229, 16), (36, 114, 200), (188, 63, 188), (17, 168, 205), (229, 229, 229)]
BRIGHT = [(102, 102, 102), (241, 76, 76), (35, 209, 139), (245, 245, 67), (59, 142, 234), (214, 112, 214), (41, 184, 219), (255, 255, 255)]
FG, BG = (220, 220, 220), (24, 24, 24)


def xterm256(n):
    if n < 8:
        return BASIC[n]
    if n < 16:
        return BRIGHT[n - 8]
    if n < 232:
        n -= 16
        return tuple(0 if c == 0 else 55 + 40 * c for c in (n // 36, (n // 6) % 6, n % 6))
    v = 8 + 10 * (n - 232)
    return (v, v, v)


def parse(line):
    cells, fg, bg, bold = [], FG, BG, False
    for part in re.split(r"(\x1b\[[0-9;]*m)", line):
        if part.startswith("\x1b["):
            codes = [int(c) if c else 0 for c in part[2:-1].split(";")] or [0]
            i = 0
            while i < len(codes):
                c = codes[i]
                if c == 0:
                    fg, bg, bold = FG, BG, False
                elif c == 1:
                    bold = True
                elif 30 <= c <= 37:
                    fg = BASIC[c - 30]
                elif 90 <= c <= 97:
                    fg = BRIGHT[c - 90]
                elif 40 <= c <= 47:
                    bg = BASIC[c - 40]
                elif c in (38, 48) and i + 2 < len(codes) and codes[i + 1] == 5:
                    (fg, bg) = (xterm256(codes[i + 2]), bg) if c == 38 else (fg, xterm256(codes[i + 2]))
                    i += 2
                elif c in (38, 48) and i + 4 < len(codes) and codes[i + 1] == 2:
                    rgb = tuple(codes[i + 2 : i + 5])
                    (fg, bg) = (rgb, bg) if c == 38 else (fg, rgb)
                    i += 4
                elif c == 39:
                    fg = FG
                elif c == 49:
                    bg = BG
                i += 1
        else:
            cells += [(ch, fg, bg, bold) for ch in part]
    return cells


src, out = sys.argv[1], sys.argv[2]
lines = [parse(l) for l in open(src, encoding="utf-8").read().split("\n")]
font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf", 14)
bold = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf", 14)
cw, ch = 9, 18
w = max(len(l) for l in lines)
img = Image.new("RGB", (w * cw + 16, len(lines) * ch + 16), BG)
d = ImageDraw.Draw(img)
for y, cells in enumerate(lines):
    for x, (c, fg, bg, b) in enumerate(cells):
        px, py = 8 + x * cw, 8 + y * ch
        if bg != BG:
            d.rectangle([px, py, px + cw, py + ch], fill=bg)
        o = ord(c)
        if 0x2800 <= o <= 0x28FF:  # braille: draw the dots (the monospace font has no such glyphs)
            bits = o - 0x2800
            dots = [(0, 0, 0x01), (0, 1, 0x02), (0, 2, 0x04), (1, 0, 0x08), (1, 1, 0x10), (1, 2, 0x20), (0, 3, 0x40), (1, 3, 0x80)]
            for dx, dy, m in dots:
                if bits & m:
                    cx, cy = px + 2 + dx * 4, py + 2 + dy * 4
                    d.rectangle([cx, cy, cx + 1, cy + 1], fill=fg)
        else:
            d.text((px, py), c, fill=fg, font=bold if b else font)
img.save(out)
