"""Headless Chromium for the HTML report tests: every image loads, no console errors, not blank."""
import shutil
import subprocess

import numpy as np
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def check_page(html_path, tmp_path, expect_images: int) -> np.ndarray:
    """Load the page, assert it is sound, return the screenshot's pixels (grayscale)."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=5000", "--user-data-dir=" + str(tmp_path / "chromium-profile")]
    url = f"file://{html_path}"
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert f'data-images="ok {expect_images}"' in dom.stdout, dom.stderr[-2000:]  # set by the page's own script
    assert "Uncaught" not in dom.stderr and "CONSOLE" not in dom.stderr, dom.stderr[-2000:]
    shot = tmp_path / "screenshot.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1280,2000", url],
                   capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.std() > 10  # not blank: text, tables and plots
    return pixels
