"""Regenerate ``docs/report.png``, the README's picture of an HTML report.

Renders ``rtqa check sample_data/lung_5fx`` (a case with a deviation) in headless Chromium and
keeps the header, the first rows of the findings table, the DVHs and the dose slices, scaled to
900 px wide. Needs ``chromium`` and ``chromium-driver``.

Usage: python docs/screenshot.py
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "report.png"
WIDTH = 900
FINDING_ROWS = 9


def main() -> int:
    sys.path.insert(0, str(ROOT / "tests"))
    from browser import launch
    from PIL import Image

    from rtqa.check import CheckOptions, run_check
    from rtqa.report.html import render_html

    os.chdir(ROOT)  # relative input paths in the report
    (result,) = run_check(["sample_data/lung_5fx"], CheckOptions(keep_context=True))
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(render_html(result), encoding="utf-8")
        driver = launch(Path(tmp) / "profile")
        try:
            driver.set_window_size(1280, 1000)
            driver.get(page.as_uri())
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(1280, int(height) + 200)
            box = driver.execute_script(
                """
                const table = document.getElementById('deviations')
                    || document.getElementById('findings');
                const rows = table.querySelectorAll('tr');
                const cut = rows[Math.min(arguments[0], rows.length - 1)].getBoundingClientRect();
                const figs = document.querySelectorAll('section.figures figure');
                const first = figs[0].getBoundingClientRect();
                const last = figs[Math.min(1, figs.length - 1)].getBoundingClientRect();
                return [cut.bottom, first.top - 40, last.bottom,
                        window.devicePixelRatio];
                """,
                FINDING_ROWS,
            )
            shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
        finally:
            driver.quit()
    cut, fig_top, fig_bottom, ratio = (float(v) for v in box)
    top = shot.crop((0, 0, shot.width, int(cut * ratio) + 6))
    figs = shot.crop((0, int(fig_top * ratio), shot.width, int(fig_bottom * ratio) + 6))
    joined = Image.new("RGB", (shot.width, top.height + figs.height), "white")
    joined.paste(top, (0, 0))
    joined.paste(figs, (0, top.height))
    scale = WIDTH / joined.width
    small = joined.resize((WIDTH, round(joined.height * scale)), Image.LANCZOS)
    small.quantize(colors=256, method=Image.Quantize.FASTOCTREE).save(OUT, optimize=True)
    print(
        f"{OUT.relative_to(ROOT)}: {small.width} x {small.height}, {OUT.stat().st_size // 1024} KB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
