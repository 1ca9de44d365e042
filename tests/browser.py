"""Headless Chromium for the browser tests, driven by Selenium through chromedriver.

Chromium is required, not optional: without it the browser tests fail with the command that
installs it. The executables are found on PATH (or ``RTQA_CHROMIUM`` / ``RTQA_CHROMEDRIVER``),
so Selenium never downloads a driver. Every session gets a fresh profile directory and the
flags that keep Chromium off the network.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

INSTALL = "apt-get install -y chromium chromium-driver"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,2000",
)


def _find(env: str, names: tuple[str, ...]) -> str | None:
    given = os.environ.get(env)
    if given:
        return given if Path(given).exists() else None
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


def executables() -> tuple[str, str]:
    """(chromium, chromedriver) paths; the test fails, naming the install command, without."""
    chromium = _find("RTQA_CHROMIUM", ("chromium", "chromium-browser"))
    driver = _find("RTQA_CHROMEDRIVER", ("chromedriver",))
    missing = [n for n, p in (("chromium", chromium), ("chromedriver", driver)) if not p]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: the browser tests need headless Chromium. "
            f"Install it with `{INSTALL}` (Debian/Ubuntu), or set RTQA_CHROMIUM and "
            "RTQA_CHROMEDRIVER to the executables.",
            pytrace=False,
        )
    return chromium, driver  # type: ignore[return-value]


def launch(profile_dir: Path):
    """A Selenium Chrome driver on headless Chromium with a fresh profile in ``profile_dir``;
    the browser console is captured (``driver.get_log("browser")``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = executables()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))


def console_errors(driver) -> list[str]:
    """Messages logged at SEVERE level (errors) since the last call."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def screenshot(driver, name: str) -> Path:
    """Save a full-page screenshot to ``test-artifacts/<name>.png``."""
    ARTIFACTS.mkdir(exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(int(height), 600), 16000))
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path
