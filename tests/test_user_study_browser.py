"""End to end in a real browser: the study server in a subprocess, Debian's Chromium driven by Selenium.

Two respondents go through full sessions with planted answers (buttons and
R/F keys, a double click, a reload, a killed and restarted server); the
SQLite rows and the `report` command's percentages must match what was
planted. A screenshot of a session is kept (its path is printed).
"""

import contextlib
import json
import os
import pathlib
import re
import shutil
import sqlite3
import subprocess
import sys
import time

import pytest
from PIL import Image, ImageEnhance, ImageOps

from webapp_helpers import BROWSER_MARKS, headless_chromium

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
ARTIFACTS = pathlib.Path(os.environ.get("KC_TEST_ARTIFACTS", REPO_ROOT / "tests" / "artifacts"))
DISPLAY_SIZE = 256
PER_RESPONDENT = 6

pytestmark = BROWSER_MARKS
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

# What each respondent answers for its 1st and 2nd image of each source.
PLANTED = {
    1: {"real": ["real", "real"], "good": ["real", "fake"], "bad": ["fake", "fake"]},
    2: {"real": ["real", "fake"], "good": ["fake", "real"], "bad": ["fake", "real"]},
}


# ---------------------------------------------------------------- fixtures


def _fallback_scene(i: int) -> Image.Image:
    im = Image.linear_gradient("L").resize((320, 320)).convert("RGB")
    sky = Image.new("RGB", im.size, (70 + 12 * i, 130, 220 - 9 * i))
    ground = Image.new("RGB", im.size, (60, 110 + 10 * i, 40))
    return Image.composite(ground, sky, Image.linear_gradient("L").resize(im.size)).rotate(3 * i)


@pytest.fixture
def study_folders(request, tmp_path):
    """real/ (JPEG photos) plus good/ and bad/ "colorizations" (PNG, 256 px) with the same names.

    Uses the shared real landscape photos when present, else drawn scenes.
    """
    try:
        photos = sorted(request.getfixturevalue("landscapes_dir").glob("*.jpg"))[:9]
    except pytest.skip.Exception:
        photos = []
    folders = {name: tmp_path / name for name in ("real", "good", "bad")}
    for folder in folders.values():
        folder.mkdir()
    for i in range(9):
        name = photos[i].stem if photos else f"scene{i}"
        if photos:
            shutil.copy(photos[i], folders["real"] / f"{name}.jpg")
            im = Image.open(photos[i]).convert("RGB")
        else:
            im = _fallback_scene(i)
            im.save(folders["real"] / f"{name}.jpg", quality=92)
        ImageEnhance.Color(im).enhance(0.7).resize((256, 256)).save(folders["good"] / f"{name}.png")
        ImageOps.colorize(im.convert("L"), (30, 20, 0), (255, 235, 205)).resize((256, 256)).save(
            folders["bad"] / f"{name}.png")
    return folders


class StudyProcess:
    """`python -m keras_colorize.user_study serve` in a subprocess on a free port."""

    def __init__(self, folders, db_path):
        self.args = [sys.executable, "-m", "keras_colorize.user_study", "serve", f"--real={folders['real']}",
                     "--model", f"good={folders['good']}", "--model", f"bad={folders['bad']}",
                     f"--per_respondent={PER_RESPONDENT}", f"--db={db_path}", "--port=0", "--seed=11",
                     f"--display_size={DISPLAY_SIZE}"]
        self.proc = None
        self.url = None

    def start(self):
        self.proc = subprocess.Popen(self.args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            match = re.search(r"Serving the study at (http://\S+)", line)
            if match:
                self.url = match.group(1)
                return self
        self.stop()
        raise RuntimeError(f"the study server did not start: {self.args}")

    def kill(self):
        """SIGKILL: no shutdown code runs, as when a server crashes."""
        self.proc.kill()
        self.proc.wait(30)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)


@pytest.fixture
def browser(tmp_path):
    with headless_chromium(tmp_path / "chromium-profile", "900,760") as driver:
        yield driver


# ---------------------------------------------------------------- helpers


def _query(db_path, sql, args=()):
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        return conn.execute(sql, args).fetchall()


def _wait_for_image(driver, position):
    """Waits until image `position` is shown and answerable; returns its id."""
    def ready(d):
        shown = d.execute_script(
            "const p = document.getElementById('photo');"
            "return [document.getElementById('progress').textContent, !document.getElementById('trial').hidden,"
            " p.complete && p.naturalWidth > 0 && !p.classList.contains('loading'),"
            " !document.getElementById('answer-real').disabled, p.dataset.imageId];")
        return shown[4] if shown[:4] == [f"Image {position} of {PER_RESPONDENT}", True, True, True] else False
    return WebDriverWait(driver, 30).until(ready)


def _photo_geometry(driver):
    return driver.execute_script(
        "const p = document.getElementById('photo'), b = document.getElementById('photo-box').getBoundingClientRect();"
        "return [p.naturalWidth, p.naturalHeight, Math.round(b.width), Math.round(b.height)];")


class Respondent:
    """Answers as PLANTED says, alternating clicks and R/F keys; records what it answered."""

    def __init__(self, number, driver, db_path):
        self.number, self.driver, self.db_path = number, driver, db_path
        self.sources = dict(_query(db_path, "SELECT image_id, source FROM images"))
        self.seen = {"real": 0, "good": 0, "bad": 0}
        self.answers = {}  # image_id -> answer

    def answer(self, position, how, wait_s=0.0):
        image_id = _wait_for_image(self.driver, position)
        natural_w, natural_h, box_w, box_h = _photo_geometry(self.driver)
        assert max(natural_w, natural_h) == DISPLAY_SIZE and (box_w, box_h) == (DISPLAY_SIZE, DISPLAY_SIZE)
        source = self.sources[image_id]
        value = PLANTED[self.number][source][self.seen[source]]
        self.seen[source] += 1
        time.sleep(wait_s)
        if how == "click":
            self.driver.find_element(By.ID, f"answer-{value}").click()
        elif how == "key":
            ActionChains(self.driver).send_keys("r" if value == "real" else "f").perform()
        elif how == "double-click":  # two clicks in one task: the second must not answer the next image
            self.driver.execute_script(
                "const b = document.getElementById(arguments[0]); b.click(); b.click();", f"answer-{value}")
        self.answers[image_id] = value
        return image_id


# ---------------------------------------------------------------- the test


def test_full_sessions_in_chromium(study_folders, browser, tmp_path, capsys):
    db_path = tmp_path / "study.sqlite"
    server = StudyProcess(study_folders, db_path).start()
    try:
        # Respondent 1: start page, then buttons and keys, a reload, a crash of the server.
        browser.get(server.url)
        WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "start").is_displayed())
        assert browser.find_element(By.ID, "intro-total").text == str(PER_RESPONDENT)
        assert _query(db_path, "SELECT COUNT(*) FROM respondents") == [(0,)]  # nothing made before the click
        browser.find_element(By.ID, "start").click()
        first = Respondent(1, browser, db_path)
        first.answer(1, "click")
        _wait_for_image(browser, 2)
        screenshot = ARTIFACTS / "user_study_session.png"
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(screenshot))
        with capsys.disabled():
            print(f"\nuser-study screenshot (session, image 2 of {PER_RESPONDENT}): {screenshot}")
        with Image.open(screenshot) as shot:
            assert shot.size[0] >= DISPLAY_SIZE and shot.size[1] >= DISPLAY_SIZE
        first.answer(2, "key", wait_s=0.4)
        first.answer(3, "click")

        due = _wait_for_image(browser, 4)
        browser.refresh()  # leave and come back: same position, same image
        assert _wait_for_image(browser, 4) == due
        first.answer(4, "key")

        due = _wait_for_image(browser, 5)
        server.kill()
        assert len(_query(db_path, "SELECT * FROM answers")) == 4  # committed before the crash
        server.start()  # new port; the cookie (host-wide) still identifies respondent 1
        browser.get(server.url)
        assert _wait_for_image(browser, 5) == due
        first.answer(5, "click")
        first.answer(6, "key")
        WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "done").is_displayed())
        assert "Thank you" in browser.find_element(By.ID, "done").text

        # Respondent 2: the next person on the same computer.
        browser.find_element(By.ID, "next-person").click()
        WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "start").is_displayed())
        assert browser.find_element(By.ID, "intro-total").text == str(PER_RESPONDENT)
        browser.find_element(By.ID, "start").click()
        second = Respondent(2, browser, db_path)
        second.answer(1, "double-click")
        _wait_for_image(browser, 2)
        second_id = _query(db_path, "SELECT respondent_id FROM respondents WHERE number = 2")[0][0]
        assert _query(db_path, "SELECT COUNT(*) FROM answers WHERE respondent_id = ?", (second_id,)) == [(1,)]
        for position, how in zip(range(2, 7), ["key", "click", "key", "click", "key"]):
            second.answer(position, how)
        WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "done").is_displayed())

        # A fresh browser identity gets the start page; nobody is created before the click.
        browser.delete_all_cookies()
        browser.get(server.url)
        WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "start").is_displayed())
        assert _query(db_path, "SELECT COUNT(*) FROM respondents") == [(2,)]
    finally:
        server.stop()

    # The database holds exactly the planted answers, in plan order, with their sources.
    rows = _query(db_path, "SELECT r.number, a.position, a.image_id, a.source, a.scene, a.answer, a.response_ms "
                           "FROM answers a JOIN respondents r USING (respondent_id) ORDER BY r.number, a.position")
    plans = _query(db_path, "SELECT r.number, a.position, a.image_id FROM assignments a "
                            "JOIN respondents r USING (respondent_id) ORDER BY r.number, a.position")
    images = {image_id: (source, scene) for image_id, source, scene in
              _query(db_path, "SELECT image_id, source, scene FROM images")}
    assert [(n, p, i) for n, p, i, *_ in rows] == plans
    for respondent in (first, second):
        mine = [r for r in rows if r[0] == respondent.number]
        assert {r[2]: r[5] for r in mine} == respondent.answers
        assert all(images[r[2]] == (r[3], r[4]) for r in mine)
        assert len({r[4] for r in mine}) == PER_RESPONDENT  # never the same scene twice
        assert {r[3]: sum(x[3] == r[3] for x in mine) for r in mine} == {"real": 2, "good": 2, "bad": 2}
        assert all(0 <= r[6] < 60_000 for r in mine)
    assert rows[1][6] >= 400  # respondent 1 waited 0.4 s before answering image 2

    # The report agrees with the planted answers.
    out = tmp_path / "report"
    result = subprocess.run([sys.executable, "-m", "keras_colorize.user_study", "report", f"--db={db_path}",
                             f"--out={out}"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "study_report.json").read_text())
    assert report["study"]["respondents_completed"] == 2 and report["study"]["judgments"] == 12
    by_source = {row["source"]: row for row in report["sources"]}
    for source in ("real", "good", "bad"):
        planted = PLANTED[1][source] + PLANTED[2][source]
        assert by_source[source]["judgments"] == len(planted)
        assert by_source[source]["respondents"] == 2
        assert by_source[source]["percent_real"] == pytest.approx(100 * planted.count("real") / len(planted))
        assert f"{by_source[source]['percent_real']:.1f} %" in result.stdout
    per_respondent = [PLANTED[n]["real"].count("real") / 2 for n in (1, 2)]
    accuracy = report["real_photo_accuracy"]
    assert accuracy["mean_of_respondents_percent"] == pytest.approx(100 * sum(per_respondent) / 2)
    assert (accuracy["min_percent"], accuracy["max_percent"]) == (100 * min(per_respondent), 100 * max(per_respondent))
