"""User study without a browser: folders, plans, storage, HTTP security, report, command line.

The HTTP tests run the real server (in a thread, on a free port) against a real
SQLite file; `test_user_study_browser.py` drives the page in Chromium.
"""

import contextlib
import http.client
import http.cookiejar
import io
import json
import os
import pathlib
import re
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from PIL import Image

from keras_colorize.user_study import catalog as catalog_lib
from keras_colorize.user_study import display
from keras_colorize.user_study import plan as plan_lib
from keras_colorize.user_study import report as report_lib
from keras_colorize.user_study import server as server_lib
from webapp_helpers import serving_in_a_thread

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _scene_image(seed: int, size=(96, 64)) -> Image.Image:
    """A small landscape-like picture (sky gradient over a ground band), different per seed."""
    w, h = size
    im = Image.new("RGB", size)
    px = im.load()
    horizon = h // 2 + (seed * 7) % (h // 4)
    for y in range(h):
        for x in range(w):
            if y < horizon:
                px[x, y] = (90 + y + seed * 5 % 60, 140 + y, 230 - (seed * 11) % 50)
            else:
                px[x, y] = (60 + (x * seed) % 50, 110 + (y * 3) % 60, 40 + seed % 30)
    return im


def make_folders(root: pathlib.Path, scenes=6, models=("good", "bad")) -> dict[str, pathlib.Path]:
    """`real/` (JPEG) and one folder per model (PNG, same relative names), `scenes` scenes each."""
    folders = {"real": root / "real", **{m: root / m for m in models}}
    for i in range(scenes):
        rel = f"set{i % 2}/scene{i}"
        base = _scene_image(i + 1)
        (folders["real"] / rel).parent.mkdir(parents=True, exist_ok=True)
        base.save(folders["real"] / f"{rel}.jpg", quality=92)
        for j, m in enumerate(models):
            (folders[m] / rel).parent.mkdir(parents=True, exist_ok=True)
            tinted = Image.merge("RGB", [c.point(lambda v, j=j: min(255, v + 30 * (j + 1))) if k == j else c
                                         for k, c in enumerate(base.split())])
            tinted.save(folders[m] / f"{rel}.png")
    return folders


# ---------------------------------------------------------------- catalog


@pytest.mark.parametrize("value", ["noequals", "=dir", "name=", "real=dir", "REAL=dir", "bad name=dir", "-x=dir"])
def test_parse_model_arg_rejects_malformed(value):
    with pytest.raises(ValueError, match="--model"):
        catalog_lib.parse_model_arg(value)


def test_parse_model_arg_accepts_name_and_dir():
    assert catalog_lib.parse_model_arg("zhang-2016.v1=out/z=1") == ("zhang-2016.v1", pathlib.Path("out/z=1"))


def test_catalog_matches_scenes_across_folders_and_extensions(tmp_path):
    folders = make_folders(tmp_path, scenes=3, models=("m",))
    _scene_image(9).save(folders["real"] / "only_real.jpg")
    (folders["m"] / ".hidden.png").write_bytes(b"not an image")
    (folders["m"] / "notes.txt").write_text("ignored")
    catalog = catalog_lib.build_catalog(folders["real"], [("m", folders["m"])])
    assert catalog.sources == ("real", "m")
    scenes = catalog.by_scene()
    assert set(scenes) == {"set0/scene0", "set1/scene1", "set0/scene2", "only_real"}
    assert set(scenes["set1/scene1"]) == {"real", "m"}
    assert scenes["set1/scene1"]["m"].path.suffix == ".png"
    assert set(scenes["only_real"]) == {"real"}
    assert catalog.count("real") == 4 and catalog.count("m") == 3
    assert (scenes["set0/scene0"]["real"].width, scenes["set0/scene0"]["real"].height) == (96, 64)


def test_catalog_errors_name_the_argument(tmp_path):
    folders = make_folders(tmp_path, scenes=2, models=("m",))
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    cases = [
        (dict(real_dir=tmp_path / "missing", models=[("m", folders["m"])]), "--real: folder .* does not exist"),
        (dict(real_dir=tmp_path / "file.txt", models=[("m", folders["m"])]), "is not a folder"),
        (dict(real_dir=folders["real"], models=[]), "at least one --model"),
        (dict(real_dir=folders["real"], models=[("m", tmp_path / "nope")]), "--model m: folder"),
        (dict(real_dir=folders["real"], models=[("m", tmp_path / "empty")]), "--model m=.*no images"),
        (dict(real_dir=folders["real"], models=[("m", folders["m"]), ("M", folders["real"])]), "given twice"),
        (dict(real_dir=folders["real"], models=[("m", folders["real"])]), "same folder as --real"),
    ]
    for kwargs, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            catalog_lib.build_catalog(**kwargs)

    _scene_image(1).save(folders["m"] / "set0" / "scene0.jpg")  # scene0.png exists too
    with pytest.raises(ValueError, match="same scene 'set0/scene0'"):
        catalog_lib.build_catalog(folders["real"], [("m", folders["m"])])
    (folders["m"] / "set0" / "scene0.jpg").unlink()
    (folders["m"] / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match="cannot be read: .*broken.png"):
        catalog_lib.build_catalog(folders["real"], [("m", folders["m"])])


def test_display_warnings_flag_upscaling_and_shape_mismatch(tmp_path):
    folders = make_folders(tmp_path, scenes=2, models=("m",))
    catalog = catalog_lib.build_catalog(folders["real"], [("m", folders["m"])])
    assert catalog_lib.display_warnings(catalog, 96) == []
    assert "upscaled" in " ".join(catalog_lib.display_warnings(catalog, 256))
    _scene_image(1, size=(64, 64)).save(folders["m"] / "set0" / "scene0.png")
    catalog = catalog_lib.build_catalog(folders["real"], [("m", folders["m"])])
    assert "aspect ratios" in " ".join(catalog_lib.display_warnings(catalog, 64))


def test_image_ids_are_opaque_and_keyed():
    a = catalog_lib.make_image_id(b"salt1", "real", "coast/img1")
    assert catalog_lib.IMAGE_ID_PATTERN.match(a)
    assert "real" not in a and "coast" not in a
    assert a == catalog_lib.make_image_id(b"salt1", "real", "coast/img1")
    assert a != catalog_lib.make_image_id(b"salt2", "real", "coast/img1")
    assert a != catalog_lib.make_image_id(b"salt1", "m", "coast/img1")


# ---------------------------------------------------------------- plan


def test_plan_is_balanced_seeded_and_never_repeats_a_scene():
    sources = ("real", "a", "b")
    available = {f"s{i:02d}": sources for i in range(30)}
    plans = {}
    for number in range(1, 6):
        plan = plan_lib.make_plan(available, sources, 12, seed=7, respondent_number=number)
        assert len(plan) == 12
        assert len({scene for scene, _ in plan}) == 12
        assert sorted(source for _, source in plan).count("a") == 4
        assert {source for _, source in plan} == set(sources)
        assert plan == plan_lib.make_plan(available, sources, 12, seed=7, respondent_number=number)
        plans[number] = plan
    assert len({tuple(p) for p in plans.values()}) == 5
    assert plan_lib.make_plan(available, sources, 12, seed=8, respondent_number=1) != plans[1]
    # The order is shuffled, not grouped by source.
    assert any(plan[i][1] != plan[i + 1][1] for plan in plans.values() for i in range(11))


def test_plan_with_uneven_folders_fills_from_what_exists():
    sources = ("real", "a")
    available = {f"s{i}": ("real",) for i in range(8)} | {"t0": ("real", "a"), "t1": ("a",)}
    plan = plan_lib.make_plan(available, sources, 8, seed=0, respondent_number=1)
    assert len({scene for scene, _ in plan}) == 8
    assert all(source in available[scene] for scene, source in plan)
    assert sum(source == "a" for _, source in plan) == 2  # "a" has only two scenes


@pytest.mark.parametrize("n", [0, 11])
def test_plan_rejects_impossible_sizes(n):
    with pytest.raises(ValueError, match=f"per_respondent={n}"):
        plan_lib.make_plan({f"s{i}": ("real",) for i in range(10)}, ("real",), n, seed=0, respondent_number=1)


# ---------------------------------------------------------------- display


def test_render_for_display_fixed_size_upright_jpeg_without_metadata(tmp_path):
    im = _scene_image(3, size=(120, 60))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    exif[0x010F] = "SecretCam"
    im.save(tmp_path / "rotated.jpg", exif=exif)
    Image.new("RGBA", (50, 100), (0, 0, 255, 0)).save(tmp_path / "alpha.png")
    for name, expected_size in [("rotated.jpg", (100, 200)), ("alpha.png", (100, 200))]:
        data = display.render_for_display(tmp_path / name, 200)
        with Image.open(io.BytesIO(data)) as out:
            assert out.format == "JPEG" and out.mode == "RGB"
            assert out.size == expected_size
            assert not out.getexif(), "metadata must not reach the page"
            if name == "alpha.png":  # transparent pixels shown on white, not black
                assert min(out.getpixel((50, 100))) > 240


# ---------------------------------------------------------------- HTTP


class Client:
    """A urllib client with its own cookie jar (one browser, one respondent)."""

    def __init__(self, url):
        self.url = url.rstrip("/")
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def request(self, method, path, body=None, content_type="application/json", headers=None):
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with self.opener.open(req, timeout=30) as r:
                status, payload, ctype = r.status, r.read(), r.headers.get_content_type()
        except urllib.error.HTTPError as e:
            status, payload, ctype = e.code, e.read(), e.headers.get_content_type()
        return status, (json.loads(payload) if ctype == "application/json" else payload)

    def answer(self, image_id, answer, ms=500, **extra):
        return self.request("POST", "/api/answer", {"image_id": image_id, "answer": answer, "response_ms": ms, **extra})


@contextlib.contextmanager
def running_server(config):
    server = server_lib.make_server(config)
    with serving_in_a_thread(server):
        yield server


@pytest.fixture
def study(tmp_path):
    folders = make_folders(tmp_path / "images", scenes=6)
    config = server_lib.StudyConfig(
        real_dir=str(folders["real"]), models=(("good", str(folders["good"])), ("bad", str(folders["bad"]))),
        per_respondent=3, db_path=str(tmp_path / "study.sqlite"), port=0, seed=3, display_size=80)
    return config, folders


def _raw_get(server, path):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _db_rows(db_path, sql, args=()):
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        return conn.execute(sql, args).fetchall()


def test_http_serves_only_catalog_images_by_opaque_id(study):
    config, folders = study
    with running_server(config) as server:
        images = _db_rows(config.db_path, "SELECT image_id, source, scene FROM images")
        assert len(images) == 18
        known = images[0][0]
        status, body = _raw_get(server, f"/img/{known}")
        assert status == 200 and body[:3] == b"\xff\xd8\xff"
        assert max(Image.open(io.BytesIO(body)).size) == 80
        status, body = _raw_get(server, "/static/app.js")
        assert status == 200 and b"/api/answer" in body
        real_file = folders["real"] / "set0" / "scene0.jpg"
        for path in [
            "/img/" + "0" * 20, "/img/" + known[:-1], "/img/" + known + "0", "/img/" + known.upper(),
            "/img/../../../../etc/passwd", "/img/..%2f..%2f..%2fetc%2fpasswd", "/../../../../etc/passwd",
            "/static/../../../../etc/passwd", "/static/..%2f__init__.py", "/static/../server.py",
            "/static/app.js/..", "/static/", "/img/" + str(real_file), "/real/set0/scene0.jpg",
            "/" + str(real_file), "/set0/scene0.jpg", "/api/nothing", "/index.html/../../etc/passwd",
        ]:
            status, body = _raw_get(server, path)
            assert status == 404, (path, status)
            assert b"root:" not in body and b"import" not in body


def test_http_answers_are_validated_and_stored_once(study):
    config, _ = study
    with running_server(config) as server:
        alice, mallory = Client(server.url), Client(server.url)
        status, state = alice.request("GET", "/api/state")
        assert status == 200 and state == {"started": False, "total": 3, "display_size": 80}
        assert mallory.answer("0" * 20, "real")[0] == 403  # no session yet
        status, state = alice.request("POST", "/api/start", {})
        assert status == 200 and state["position"] == 1 and state["total"] == 3
        assert alice.request("POST", "/api/start", {})[1]["image_id"] == state["image_id"]  # a second click resumes
        first = state["image_id"]
        plan = [r[0] for r in _db_rows(config.db_path, "SELECT image_id FROM assignments ORDER BY position")]
        assert plan[0] == first and len(plan) == 3
        not_mine = next(r[0] for r in _db_rows(config.db_path, "SELECT image_id FROM images") if r[0] not in plan)

        malformed = [
            (b"{not json", "application/json"),
            (b'["real"]', "application/json"),
            (json.dumps({"image_id": first, "answer": "real", "response_ms": 5}).encode(), "text/plain"),
            (json.dumps({"image_id": first, "answer": "maybe", "response_ms": 5}).encode(), "application/json"),
            (json.dumps({"image_id": first, "answer": "REAL", "response_ms": 5}).encode(), "application/json"),
            (json.dumps({"image_id": first, "answer": "real", "response_ms": -1}).encode(), "application/json"),
            (json.dumps({"image_id": first, "answer": "real", "response_ms": "5"}).encode(), "application/json"),
            (json.dumps({"image_id": first, "answer": "real", "response_ms": True}).encode(), "application/json"),
            (json.dumps({"image_id": first, "answer": "real"}).encode(), "application/json"),
            (json.dumps({"image_id": "../etc", "answer": "real", "response_ms": 5}).encode(), "application/json"),
            (json.dumps({"image_id": first, "answer": "real", "response_ms": 5, "source": "real"}).encode(),
             "application/json"),
            (b"\xff\xfe", "application/json"),
        ]
        for body, ctype in malformed:
            status, payload = alice.request("POST", "/api/answer", body, content_type=ctype)
            assert status == 400, (body, status, payload)
            assert payload["error"]
        status, payload = alice.request("POST", "/api/answer", b"{" + b" " * 5000 + b"}")
        assert status == 413
        status, _ = alice.request("POST", "/api/answer", {"image_id": first, "answer": "real", "response_ms": 5},
                                  headers={"Origin": "http://evil.example"})
        assert status == 403
        assert alice.answer(not_mine, "real")[0] == 403  # not assigned to this respondent
        status, payload = alice.answer(plan[1], "real")  # assigned but not due yet
        assert status == 409 and payload["state"]["image_id"] == first
        assert _db_rows(config.db_path, "SELECT COUNT(*) FROM answers") == [(0,)]

        status, state = alice.answer(first, "fake", ms=1234.4)
        assert status == 200 and state["position"] == 2 and state["image_id"] == plan[1]
        status, payload = alice.answer(first, "real")  # double answer: the first one stands
        assert status == 409 and payload["state"]["position"] == 2
        assert mallory.request("POST", "/api/start", {})[0] == 200
        mallory_plan = [r[0] for r in _db_rows(
            config.db_path, "SELECT image_id FROM assignments a JOIN respondents r USING (respondent_id) "
                            "WHERE r.number = 2")]
        alice_only = [image_id for image_id in plan if image_id not in mallory_plan]
        assert mallory.answer(alice_only[0], "real")[0] == 403  # another respondent's image
        rows = _db_rows(config.db_path, "SELECT respondent_id, position, image_id, source, answer, response_ms "
                                        "FROM answers")
        source = _db_rows(config.db_path, "SELECT source FROM images WHERE image_id=?", (first,))[0][0]
        alice_id = _db_rows(config.db_path, "SELECT respondent_id FROM respondents WHERE number=1")[0][0]
        assert rows == [(alice_id, 1, first, source, "fake", 1234)]


def test_start_resumes_and_new_session_only_after_finishing(study):
    config, _ = study
    with running_server(config) as server:
        client = Client(server.url)
        state = client.request("POST", "/api/start", {})[1]
        for bad in ({"new": "yes"}, {"respondent": "x"}, [1]):
            assert client.request("POST", "/api/start", bad)[0] == 400
        assert client.request("POST", "/api/start", {"new": True})[1] == state  # unfinished: no new session
        while not state["done"]:
            state = client.answer(state["image_id"], "real")[1]
        assert client.request("POST", "/api/start", {})[1]["done"]
        fresh = client.request("POST", "/api/start", {"new": True})[1]
        assert fresh["position"] == 1 and not fresh["done"]
    numbers = _db_rows(config.db_path, "SELECT number, COUNT(a.position) FROM respondents "
                                       "LEFT JOIN answers a USING (respondent_id) GROUP BY number ORDER BY number")
    assert numbers == [(1, 3), (2, 0)]


def test_study_resumes_after_restart_and_refuses_changed_folders(study):
    config, folders = study
    client = None
    with running_server(config) as server:
        client = Client(server.url)
        state = client.request("POST", "/api/start", {})[1]
        state = client.answer(state["image_id"], "real")[1]
        due = state["image_id"]
    with running_server(config) as server:  # same database, new port: same ids, same position
        client.url = server.url.rstrip("/")
        state = client.request("GET", "/api/state")[1]
        assert state["position"] == 2 and state["image_id"] == due
    source, scene = _db_rows(config.db_path, "SELECT source, scene FROM images WHERE image_id=?", (due,))[0]
    next(p for p in folders[source].rglob("*") if p.with_suffix("").relative_to(folders[source]).as_posix()
         == scene).unlink()
    with pytest.raises(ValueError, match="not in the configured folders"):
        server_lib.make_server(config)


def test_bad_settings_are_refused_before_serving(study):
    config, _ = study
    with pytest.raises(ValueError, match="--per_respondent=7 is larger than the number of distinct scenes \\(6\\)"):
        server_lib.make_server(server_lib.StudyConfig(**{**config.__dict__, "per_respondent": 7}))
    with pytest.raises(ValueError, match="--display_size"):
        server_lib.make_server(server_lib.StudyConfig(**{**config.__dict__, "display_size": 10}))
    not_a_db = pathlib.Path(config.db_path).with_name("notes.sqlite")
    not_a_db.write_text("these are my notes, not a database " * 20)
    with pytest.raises(ValueError, match="--db: .*notes.sqlite.* is not a usable SQLite study database"):
        server_lib.make_server(server_lib.StudyConfig(**{**config.__dict__, "db_path": str(not_a_db)}))
    assert not_a_db.read_text().startswith("these are my notes")  # left as it was


# ---------------------------------------------------------------- report


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (0, 5), (3, 4), (8, 10), (17, 17), (45, 100), (100, 100),
                                 (1, 1000), (999, 1000)])
def test_wilson_interval_matches_scipy(k, n):
    """Against an independent implementation: SciPy's binomtest(k, n).proportion_ci(method="wilson")."""
    stats = pytest.importorskip("scipy.stats")
    low, high = report_lib.wilson_interval(k, n)
    reference = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert low == pytest.approx(float(reference.low), abs=1e-9), (k, n)
    assert high == pytest.approx(float(reference.high), abs=1e-9), (k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0
    assert (low == 0.0) == (k == 0) and (high == 1.0) == (k == n)


def test_wilson_interval_edge_cases():
    assert report_lib.wilson_interval(0, 0) is None
    with pytest.raises(ValueError, match="successes=5"):
        report_lib.wilson_interval(5, 4)


def test_report_percentages_from_planted_answers_and_cli(study, tmp_path):
    config, _ = study
    config = server_lib.StudyConfig(**{**config.__dict__, "per_respondent": 6})
    planted = {"real": "real", "good": "real", "bad": "fake"}  # then respondent 2 flips "good" for its odd images
    expected: dict[str, list[str]] = {"real": [], "good": [], "bad": []}
    who: dict[str, set[int]] = {"real": set(), "good": set(), "bad": set()}
    with running_server(config) as server:
        sources = dict(_db_rows(config.db_path, "SELECT image_id, source FROM images"))
        for respondent in (1, 2, 3):
            client = Client(server.url)
            state = client.request("POST", "/api/start", {})[1]
            count = 0
            while not state["done"] and not (respondent == 3 and state["answered"] == 2):  # #3 stops early
                source = sources[state["image_id"]]
                answer = planted[source]
                if respondent == 2 and source == "good":
                    count += 1
                    answer = "fake" if count % 2 else "real"
                expected[source].append(answer)
                who[source].add(respondent)
                status, state = client.answer(state["image_id"], answer, ms=100 * respondent)
                assert status == 200
        # The report reads the database while the server still runs.
        result = subprocess.run(
            [sys.executable, "-m", "keras_colorize.user_study", "report", f"--db={config.db_path}",
             f"--out={tmp_path / 'out'}"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "study_report.json").read_text())
    markdown = (tmp_path / "out" / "study_report.md").read_text()
    assert markdown.strip() in result.stdout
    assert report["study"]["respondents_started"] == 3 and report["study"]["respondents_completed"] == 2
    rows = {row["source"]: row for row in report["sources"]}
    assert [row["source"] for row in report["sources"]] == ["real", "good", "bad"]
    for source, answers in expected.items():
        judged_real = answers.count("real")
        assert rows[source]["judgments"] == len(answers) > 0
        assert rows[source]["judged_real"] == judged_real
        assert rows[source]["percent_real"] == pytest.approx(100 * judged_real / len(answers), abs=0.01)
        low, high = report_lib.wilson_interval(judged_real, len(answers))
        assert rows[source]["ci95_percent"] == pytest.approx([100 * low, 100 * high], abs=0.01)
        assert rows[source]["respondents"] == len(who[source])
        assert f"| {rows[source]['percent_real']:.1f} % |" in markdown
    assert rows["good"]["percent_real"] < 100 and rows["bad"]["percent_real"] == 0
    assert report["real_photo_accuracy"]["pooled_percent"] == 100.0


# ---------------------------------------------------------------- command line


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "keras_colorize.user_study", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})


def test_cli_reports_bad_arguments_clearly(tmp_path):
    folders = make_folders(tmp_path, scenes=3, models=("m",))
    common = ["--per_respondent=2", f"--db={tmp_path / 's.sqlite'}", "--port=0"]
    cases = [
        (["--real", str(tmp_path / "nope"), "--model", f"m={folders['m']}"], "--real: folder .*nope.* does not exist"),
        (["--real", str(folders["real"]), "--model", "m"], "--model must be NAME=DIR"),
        (["--real", str(folders["real"]), "--model", f"m={tmp_path / 'gone'}"], "--model m: folder"),
        (["--real", str(folders["real"]), "--model", f"m={folders['m']}", "--read_timeout=0"],
         "--read_timeout must be a number of seconds"),
        (["--real", str(folders["real"]), "--model", f"m={folders['m']}", "--max_connections=0"],
         "--max_connections must be an integer"),
    ]
    for args, pattern in cases:
        result = _cli("serve", *args, *common)
        assert result.returncode == 2, result
        assert re.search(pattern, result.stderr), result.stderr
    result = _cli("serve", "--real", str(folders["real"]), "--model", f"m={folders['m']}", "--per_respondent=4",
                  f"--db={tmp_path / 's.sqlite'}", "--port=0")
    assert result.returncode == 2 and "larger than the number of distinct scenes (3)" in result.stderr
    result = _cli("report", f"--db={tmp_path / 'missing.sqlite'}")
    assert result.returncode == 2 and "does not exist" in result.stderr
    assert not (tmp_path / "missing.sqlite").exists()
