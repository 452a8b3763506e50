"""kc-studio end to end in a real browser: the command in a subprocess, Debian's Chromium driven by Selenium.

One browser session goes through the issue's flow on real historical photos (../shared/data/bw): the folder
view, opening a photo, a colour point placed with the mouse in the sky and given a chosen colour, the result
checked in the image the page shows (the sky around the point moved toward the colour, the far side did not),
undo and redo, a second point removed by right-click and a third dragged, then removed with Delete, a reference photo picked with the
file chooser, the saturation control, the before/after slider dragged and a zoom, saving, the saved file
compared with what `kc-colorize --hints=<the saved sidecar>` writes for the same photo, the studio restarted on
the folder restoring the point, and "Colorize the rest".

The model is `hint_follower` (tests/test_studio.py): a tiny guided model whose hint weights are set by hand so
that a hint certainly colours the pixels around it and nothing far away; the bundled model's own response to
hints is issue 21's test. Screenshots (folder view, the photo with its points, the before/after slider) are
written to tests/artifacts/ (their paths are printed).
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from test_studio import REPO_ROOT, build_hint_follower  # noqa: F401 - the model is built by the fixture below
from webapp_helpers import BROWSER_MARKS, headless_chromium

ARTIFACTS = pathlib.Path(os.environ.get("KC_TEST_ARTIFACTS", REPO_ROOT / "tests" / "artifacts"))
PHOTOS = ["SanFran1851.jpg", "1870sSphinx.jpg", "Scotland1919.jpg", "OregonTrail1870s.jpg", "1900sDaytonaBeach.png"]
PHOTO = "SanFran1851.jpg"  # 1500 x 886, a wide bright sky over the town
SKY = (0.25, 0.10)         # where the point goes (fractions of width and height): in the sky
FAR = (0.85, 0.85)         # the far side of the photo: the ground, bottom right
CHOSEN = "#d02090"         # the chosen colour: a magenta no sky has

pytestmark = BROWSER_MARKS
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait as _WebDriverWait  # noqa: E402


def WebDriverWait(driver, timeout):  # noqa: N802 - selenium's name; the page re-renders lists while we wait
    return _WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,))

_ENV = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture
def photos_dir(bw_dir, tmp_path):
    """A folder of real black-and-white photos (a subfolder too); skipped when ../shared/data/bw is absent."""
    root = tmp_path / "photos"
    (root / "egypt").mkdir(parents=True)
    for name in PHOTOS:
        if not (bw_dir / name).is_file():
            pytest.skip(f"{bw_dir / name} is absent")
        shutil.copy(bw_dir / name, root / ("egypt" if "Sphinx" in name else "") / name)
    return root


@pytest.fixture
def browser(tmp_path):
    with headless_chromium(tmp_path / "chromium-profile", "1280,800", "--force-device-scale-factor=1") as driver:
        yield driver


def _start_studio(photos, output, model):
    proc = subprocess.Popen([sys.executable, "-m", "keras_colorize.studio", f"--photos={photos}",
                             f"--output={output}", f"--model={model}", "--port=0"],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_ENV)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        match = re.match(r"Open (http://127\.0\.0\.1:\d+/\?token=\S+)", line)
        if match:
            return proc, match.group(1)
    proc.kill()
    raise RuntimeError("kc-studio did not print its address")


DOCS_LIMIT = 300 * 1024  # the README's screenshot (docs/studio.png) stays under this


def _screenshot(driver, name, capsys, what, docs=False):
    """Saves the page as ARTIFACTS/name; `docs`: also a 256-colour copy `studio_docs.png` small enough for the
    README (docs/studio.png is such a copy)."""
    path = ARTIFACTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    assert driver.save_screenshot(str(path))
    with capsys.disabled():
        print(f"\nstudio screenshot ({what}): {path}")
    if docs:
        small = ARTIFACTS / "studio_docs.png"
        with Image.open(path) as shot:
            shot.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE).save(small, optimize=True)
        assert small.stat().st_size < DOCS_LIMIT, small.stat().st_size
    return path


# The page's own pixels: the colorized image it shows, read back through a canvas.
_BOX_PIXELS = """
const img = document.getElementById('after'), [fx, fy, r] = arguments;
const c = document.createElement('canvas');
c.width = img.naturalWidth; c.height = img.naturalHeight;
const g = c.getContext('2d'); g.drawImage(img, 0, 0);
const w = Math.round(r * c.width), h = Math.round(r * c.height);
const x = Math.round(fx * c.width) - w, y = Math.round(fy * c.height) - h;
return Array.from(g.getImageData(x, y, 2 * w + 1, 2 * h + 1).data);
"""


def _box_ab(driver, at, radius=0.025):
    """Mean CIE a*b* of the shown result in a box around `at` (fractions)."""
    from keras_colorize import color

    rgba = np.array(driver.execute_script(_BOX_PIXELS, at[0], at[1], radius), np.float32).reshape(-1, 4)
    return np.asarray(color.rgb_to_lab(rgba[None, :, :3] / 255.0))[0, :, 1:].mean(axis=0)


def _hex_ab(color_hex):
    from keras_colorize import color

    rgb = np.array([[[int(color_hex[i:i + 2], 16) for i in (1, 3, 5)]]], np.float32) / 255.0
    return np.asarray(color.rgb_to_lab(rgb))[0, 0, 1:]


def _wait_rendered(driver, timeout=60):
    """Until the result shown belongs to the latest edit (no render pending) and the image is decoded."""
    WebDriverWait(driver, timeout).until(lambda d: d.execute_script(
        "const s = document.getElementById('stage'), a = document.getElementById('after');"
        "return document.body.dataset.view === 'photo' && s.dataset.pending === '0' && Number(s.dataset.shown) > 0"
        " && a.complete && a.naturalWidth > 0;"))


def _set_input(driver, element_id, value):
    """Sets an input as the user's picker or slider does: the value, then `input` and `change` events."""
    driver.execute_script(
        "const e = document.getElementById(arguments[0]); e.value = arguments[1];"
        "e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true}));",
        element_id, value)


def _click_stage(driver, at, button="left"):
    stage = driver.find_element(By.ID, "stage")
    size = stage.size
    dx, dy = round((at[0] - 0.5) * size["width"]), round((at[1] - 0.5) * size["height"])
    actions = ActionChains(driver).move_to_element_with_offset(stage, dx, dy)
    (actions.context_click() if button == "right" else actions.click()).perform()


def _points(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#points .dot')).map(d => d.style.backgroundColor);")


def _rgb_css(color_hex):
    return "rgb({}, {}, {})".format(*(int(color_hex[i:i + 2], 16) for i in (1, 3, 5)))


def test_studio_flow_in_chromium(photos_dir, browser, tmp_path, capsys):
    model = tmp_path / "hint_follower.keras"
    build_hint_follower().save(model)
    output = tmp_path / "colorized"
    proc, url = _start_studio(photos_dir, output, model)
    cli = None
    try:
        # The folder: every photo (recursive) as a thumbnail with its state.
        browser.get(url)
        WebDriverWait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid .card")) == len(PHOTOS))
        cards = {c.get_attribute("data-path"): c.get_attribute("data-state")
                 for c in browser.find_elements(By.CSS_SELECTOR, "#grid .card")}
        assert cards == {("egypt/" if "Sphinx" in n else "") + n: "not done" for n in PHOTOS}
        WebDriverWait(browser, 60).until(lambda d: d.execute_script(
            "return Array.from(document.querySelectorAll('#grid img')).every(i => i.complete && i.naturalWidth > 0);"))

        # Open the photo once the model is ready (kc-studio warms it up while the page loads).
        WebDriverWait(browser, 120).until(lambda d: "getting ready" not in d.find_element(By.ID, "folder-info").text)
        began = time.monotonic()
        browser.find_element(By.CSS_SELECTOR, f'.card[data-path="{PHOTO}"]').click()
        _wait_rendered(browser)
        opened_s = time.monotonic() - began
        with capsys.disabled():
            print(f"\nopened {PHOTO} (1500 x 886) with its colorization in {opened_s:.2f} s")
        assert browser.find_element(By.ID, "photo-state").text == "not done"
        auto_sky, auto_far = _box_ab(browser, SKY), _box_ab(browser, FAR)

        # A point in the sky: the picker starts at the model's colour there.
        _click_stage(browser, SKY)
        WebDriverWait(browser, 10).until(lambda d: len(_points(d)) == 1)
        picked = browser.find_element(By.ID, "point-color").get_attribute("value")
        assert np.abs(_hex_ab(picked) - auto_sky).max() < 6, (picked, auto_sky)
        # The user chooses a colour and a bigger patch.
        _set_input(browser, "point-size", "7")
        _set_input(browser, "point-color", CHOSEN)
        _wait_rendered(browser)
        assert _points(browser) == [_rgb_css(CHOSEN)]
        sky, far = _box_ab(browser, SKY), _box_ab(browser, FAR)
        target = _hex_ab(CHOSEN)
        assert np.linalg.norm(sky - target) < 0.5 * np.linalg.norm(auto_sky - target), (sky, auto_sky, target)
        assert np.linalg.norm(far - auto_far) < 2.0, (far, auto_far)
        assert browser.find_element(By.ID, "photo-state").text == "edited"
        _set_input(browser, "split", "12")
        _screenshot(browser, "studio_photo_with_points.png", capsys, "a photo with a colour point, slider at 12 %")
        _set_input(browser, "split", "50")

        # Undo the colour, redo it.
        browser.find_element(By.ID, "undo").click()
        _wait_rendered(browser)
        assert _points(browser) == [_rgb_css(picked)]
        browser.find_element(By.ID, "redo").click()
        _wait_rendered(browser)
        assert _points(browser) == [_rgb_css(CHOSEN)]
        # A second point, removed by right-click; a third, removed with Delete.
        _click_stage(browser, (0.6, 0.5))
        WebDriverWait(browser, 10).until(lambda d: len(_points(d)) == 2)
        _wait_rendered(browser)
        _click_stage(browser, (0.6, 0.5), button="right")
        WebDriverWait(browser, 10).until(lambda d: len(_points(d)) == 1)
        _click_stage(browser, (0.7, 0.3))
        WebDriverWait(browser, 10).until(lambda d: len(_points(d)) == 2)
        where = "return Array.from(document.querySelectorAll('#points .point')).map(p => [p.style.left, p.style.top]);"
        before_drag = browser.execute_script(where)
        dot = browser.find_elements(By.CSS_SELECTOR, "#points .dot")[1]
        ActionChains(browser).click_and_hold(dot).move_by_offset(20, 10).move_by_offset(20, 10).release().perform()
        after_drag = browser.execute_script(where)
        assert after_drag[0] == before_drag[0] and after_drag[1] != before_drag[1], (before_drag, after_drag)
        assert float(after_drag[1][0].rstrip("%")) > float(before_drag[1][0].rstrip("%")) + 2  # dragged right
        ActionChains(browser).send_keys("\ue017").perform()  # Delete
        WebDriverWait(browser, 10).until(lambda d: len(_points(d)) == 1)
        _wait_rendered(browser)
        assert _points(browser) == [_rgb_css(CHOSEN)]

        # A reference photo, picked with the file chooser, and more saturation: both go into the saved hints.
        reference = tmp_path / "sunset.jpg"
        sunset = np.linspace([250, 150, 40], [120, 40, 90], 120, dtype=np.float32)[:, None].repeat(160, axis=1)
        Image.fromarray(sunset.astype(np.uint8)).save(reference, quality=92)
        browser.find_element(By.ID, "reference-file").send_keys(str(reference))
        WebDriverWait(browser, 30).until(lambda d: d.execute_script(
            "const i = document.getElementById('reference-thumb'); return !i.hidden && i.complete && i.naturalWidth > 0;"))
        _set_input(browser, "saturation", "120")
        _wait_rendered(browser)

        # The before/after slider, dragged, and a zoom.
        browser.find_element(By.ID, "zoom-in").click()
        divider = browser.find_element(By.ID, "divider")
        ActionChains(browser).drag_and_drop_by_offset(divider, -120, 0).perform()
        split = float(browser.find_element(By.ID, "split").get_attribute("value"))
        assert 20 < split < 48, split
        _screenshot(browser, "studio_before_after.png", capsys, f"before/after slider at {split:.0f} %, zoomed")
        browser.find_element(By.ID, "zoom-fit").click()
        _set_input(browser, "split", "50")

        # Save: the full-resolution file and its sidecar, never in the photos folder.
        browser.find_element(By.ID, "save").click()
        WebDriverWait(browser, 120).until(lambda d: d.execute_script("return document.body.dataset.saved;") == PHOTO)
        assert browser.find_element(By.ID, "photo-state").text == "saved"
        sidecar = output / f"{PHOTO}.hints.json"
        document = json.loads(sidecar.read_text())
        assert [(p["color"], p["size"]) for p in document["points"]] == [(CHOSEN, 7)]
        assert document["saturation"] == 1.2
        assert (output / document["reference"]).read_bytes() == reference.read_bytes()
        x, y = document["points"][0]["x"], document["points"][0]["y"]
        assert abs(x / 1500 - SKY[0]) < 0.01 and abs(y / 886 - SKY[1]) < 0.01, (x, y)
        assert sorted(p.name for p in photos_dir.rglob("*")) == sorted(PHOTOS + ["egypt"])
        # kc-colorize on the same photo with the saved sidecar, in the background while the test goes on.
        cli_out = tmp_path / "kc_colorize"
        cli = subprocess.Popen([sys.executable, "-m", "keras_colorize.colorize", f"--model={model}",
                                f"--input={photos_dir / PHOTO}", f"--output={cli_out}", f"--hints={sidecar}",
                                "--noprogress"], cwd=REPO_ROOT, env=_ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)

        # Reopen the studio on the folder (a new process, a new token) and reload: the saved point is back.
        proc.terminate()
        proc.wait(30)
        proc, url = _start_studio(photos_dir, output, model)
        browser.get(f"{url}#photo={PHOTO}")
        _wait_rendered(browser)
        assert _points(browser) == [_rgb_css(CHOSEN)]
        assert browser.find_element(By.ID, "edit-from").text == "Restored the saved hints."
        assert browser.find_element(By.ID, "photo-state").text == "saved"
        assert browser.find_element(By.ID, "saturation-value").text == "120 %"
        assert browser.find_element(By.ID, "reference-thumb").is_displayed()

        # Back to the folder; colorize the rest, with progress.
        browser.find_element(By.ID, "back").click()
        WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.body.dataset.view;") == "folder")
        browser.find_element(By.ID, "batch-start").click()
        WebDriverWait(browser, 180).until(
            lambda d: d.find_element(By.ID, "batch-text").text.startswith(f"Done: {len(PHOTOS) - 1} of"))
        WebDriverWait(browser, 30).until(lambda d: sorted(
            c.get_attribute("data-state") for c in d.find_elements(By.CSS_SELECTOR, "#grid .card")) ==
            ["colorized"] * (len(PHOTOS) - 1) + ["saved"])
        WebDriverWait(browser, 60).until(lambda d: d.execute_script(
            "return Array.from(document.querySelectorAll('#grid img')).every(i => i.complete && i.naturalWidth > 0);"))
        _screenshot(browser, "studio_folder.png", capsys, "folder view after saving one and colorizing the rest")
        # The saved file has the bytes kc-colorize writes for the same photo and the saved sidecar.
        _, stderr = cli.communicate(timeout=300)
        assert cli.returncode == 0, stderr[-3000:]
        assert (output / PHOTO).read_bytes() == (cli_out / PHOTO).read_bytes()
    finally:
        for process in (proc, cli):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(30)


def test_studio_with_the_bundled_guided_model(photos_dir, browser, tmp_path, capsys):
    """kc-studio with no --model runs the bundled scenes_guided: a red point in the sky of a real scan reddens
    the sky around it in the page's own image, the far corner keeps its colour. Makes the README screenshot."""
    from keras_colorize import pretrained

    pretrained.path_of(pretrained.GUIDED)  # fails the test (not a skip) if the package lacks it
    proc = subprocess.Popen([sys.executable, "-m", "keras_colorize.studio", f"--photos={photos_dir}",
                             f"--output={tmp_path / 'colorized'}", "--port=0"],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_ENV)
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            assert "scenes_guided (takes hints)" in line or not line.startswith("kc-studio:"), line
            match = re.search(r"Open (http://\S+)", line)
            url = match.group(1) if match else None
        assert url, "kc-studio did not start"
        browser.get(url)
        WebDriverWait(browser, 120).until(lambda d: "getting ready" not in d.find_element(By.ID, "folder-info").text)
        browser.find_element(By.CSS_SELECTOR, f'.card[data-path="{PHOTO}"]').click()
        _wait_rendered(browser)
        auto_sky, auto_far = _box_ab(browser, SKY), _box_ab(browser, FAR)
        _click_stage(browser, SKY)
        WebDriverWait(browser, 10).until(lambda d: len(_points(d)) == 1)
        _set_input(browser, "point-size", "7")
        _set_input(browser, "point-color", "#d22020")
        _wait_rendered(browser)
        sky, far = _box_ab(browser, SKY), _box_ab(browser, FAR)
        # Measured 2026-12-04 on scenes_guided: the model reaches part of the way to the chosen red (see its card).
        assert sky[0] > auto_sky[0] + 8, (sky, auto_sky)
        assert np.linalg.norm(far - auto_far) < 2.0, (far, auto_far)
        _set_input(browser, "split", "12")
        _screenshot(browser, "studio_guided_model.png", capsys, "the bundled guided model, a red point in the sky, "
                    "slider at 12 %", docs=True)
    finally:
        proc.terminate()
        proc.wait(30)
