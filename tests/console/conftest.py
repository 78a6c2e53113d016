"""The console's tests drive Debian's headless Chromium (infra/browser.sh installs it)
through selenium, against a console and a gRPC server on the real services and on the
embedded stack. Screenshots of each page go to $VAHINI_ARTIFACTS (default
build/artifacts/console), from where docs/console.md takes them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(os.environ.get("VAHINI_ARTIFACTS", Path(__file__).resolve().parents[2] / "build" / "artifacts")) \
    / "console"


@pytest.fixture(scope="session")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("Chromium is not installed: bash infra/browser.sh install (make test runs it)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    # No sandbox as root; no background networking: this network refuses Chromium's own calls home.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={tempfile.mkdtemp()}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def screenshot(browser):
    def save(name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        browser.save_screenshot(str(path))
        return path
    return save
