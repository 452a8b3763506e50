"""What the tests of both web apps (the studio and the user study) share: a headless Chromium, and an
in-process server on a thread."""

import contextlib
import os
import threading

import pytest

CHROMIUM = os.environ.get("KC_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("KC_CHROMEDRIVER", "/usr/bin/chromedriver")

#: ``pytestmark`` of a browser test module: marked, and skipped with the reason where Chromium is absent.
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)),
                       reason=f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER})"),
]


@contextlib.contextmanager
def headless_chromium(profile_dir, window_size, *extra_args):
    """A selenium driver for Debian's Chromium, offline (no driver download, no background traffic)."""
    from selenium import webdriver  # noqa: PLC0415 - only where selenium is installed
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not try to download a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", f"--window-size={window_size}", f"--user-data-dir={profile_dir}", *extra_args):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@contextlib.contextmanager
def serving_in_a_thread(server, after_close=None):
    """Runs ``server.serve_forever()`` on a thread; on exit shuts it down, closes its app, then ``after_close()``."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        server.app.close()
        if after_close is not None:
            after_close()
        thread.join(10)
