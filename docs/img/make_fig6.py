"""Builds docs/img/idrid_fig6.jpg: IDRiD_55 (a test image) with the ground truth and the two
runs' predictions of docs/results.md "IDRiD lesions", in the paper's Fig. 6 colours (EX red,
HE green, MA blue, SE pink). The prediction panels are `ds2f predict --overlay` outputs; the
truth panel paints the lesion masks in the same colours and order (later id wins).

python3 docs/img/make_fig6.py ../shared/data/idrid /work/exp/fig6 docs/img/idrid_fig6.jpg
"""
import os
import sys

from PIL import Image, ImageDraw

COLOURS = [("MA", (0, 0, 255)), ("HE", (0, 255, 0)), ("EX", (255, 0, 0)), ("SE", (255, 105, 180))]


def truth_panel(root, name):
    img = Image.open(f"{root}/images/{name}.jpg").convert("RGB")
    px = img.load()
    for code, colour in COLOURS:
        path = f"{root}/masks/{code}/{name}.png"
        if not os.path.exists(path):
            continue
        m = Image.open(path).convert("L").load()
        for y in range(img.height):
            for x in range(img.width):
                if m[x, y] > 127:
                    px[x, y] = colour
    return img


def main():
    root, preds, out = sys.argv[1:4]
    name = "IDRiD_55"
    panels = [("ground truth", truth_panel(root, name))]
    for title, run in [("U-Net+Inter (cbce)", "unet_inter"), ("DS2F (cbce)", "ds2f")]:
        panels.append((title, Image.open(f"{preds}/{run}/{name}_overlay.png").convert("RGB")))
    w, h = 715, 475
    sheet = Image.new("RGB", (3 * w, h + 28), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (title, p) in enumerate(panels):
        p = p.crop((0, 0, 2144, 1424)).resize((w, h), Image.LANCZOS)
        sheet.paste(p, (i * w, 28))
        draw.text((i * w + 8, 8), title, fill="black")
    sheet.save(out, quality=88)


if __name__ == "__main__":
    main()
