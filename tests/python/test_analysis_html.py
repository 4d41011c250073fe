#!/usr/bin/python3
"""report.html renders in a real browser: headless Chromium screenshots it.

Runs a small real `kvlab sweep`, makes its report with analysis/plot_results.py,
opens report.html in headless Chromium (Debian's `chromium`, installed by
tools/setup.sh) and checks the screenshot: the right size, and not blank
(a broken page or a missing image renders mostly white).

Skips with exit 77 (printing why) when Chromium or the kvlab binary is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import sweep_fixture  # noqa: E402

WIDTH, HEIGHT = 1400, 2000


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(browser: str, page: Path, png: Path, profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={png}",
         f"--window-size={WIDTH},{HEIGHT}", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=180)


class ReportInBrowserTest(unittest.TestCase):
    def test_report_html_renders(self):
        import matplotlib.image as mpimg
        import numpy as np
        with tempfile.TemporaryDirectory(prefix="kvlab-html-") as tmp:
            tmp = Path(tmp)
            results = sweep_fixture.make_results(tmp, KVLAB)
            plot = subprocess.run(
                [sys.executable, str(sweep_fixture.REPO / "analysis" / "plot_results.py"),
                 str(results), "--out", str(tmp / "figures"), "--no-pdf", "--no-heatmaps",
                 "--kvlab", str(KVLAB)], capture_output=True, text=True, timeout=600)
            self.assertEqual(plot.returncode, 0, plot.stderr)
            page = tmp / "figures" / "report.html"
            png = tmp / "shot.png"
            proc = screenshot(BROWSER, page, png, tmp / "profile")
            self.assertTrue(png.is_file(), f"no screenshot (exit {proc.returncode}): "
                                           f"{proc.stderr[-2000:]}")
            self.assertGreater(png.stat().st_size, 30_000)  # a blank page is a few kB
            pixels = mpimg.imread(png)[..., :3]
            self.assertEqual(pixels.shape[:2], (HEIGHT, WIDTH))
            ink = (pixels < 0.9).any(axis=2).mean()  # share of pixels that are not near white
            self.assertGreater(ink, 0.03, f"screenshot looks blank ({ink:.1%} ink)")
            colours = np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)
            self.assertGreater(len(colours), 200, "no figure rendered (too few colours)")


if __name__ == "__main__":
    BROWSER = chromium()
    if BROWSER is None:
        sweep_fixture.skip("chromium not installed (tools/setup.sh installs Debian's chromium)")
    KVLAB = sweep_fixture.require_kvlab()
    unittest.main()
