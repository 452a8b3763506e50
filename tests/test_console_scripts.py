"""Every console script of setup.cfg, installed: bad arguments are one line and exit 2, --help exits 0, a missing
optional extra is named.

The scripts run as a user runs them: the files pip wrote into the venv's bin folder, from a folder outside the
checkout. After adding an entry point, reinstall (``pip install -e . --no-deps``); a script that is not installed
is skipped with that instruction. All the processes start at once (a thread pool), so the file takes about as long
as the slowest TensorFlow start-up.
"""

import concurrent.futures
import configparser
import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
BIN = pathlib.Path(sys.executable).parent

#: What each script names when run with no arguments: its first required flag (kc-user-study: the subcommand).
MISSING = {
    "kc-make-shards": "--source",
    "kc-train": "work_dir",
    "kc-evaluate": "--model",
    "kc-colorize": "--input",
    "kc-colorize-video": "--input",
    "kc-user-study": "command",
    "kc-studio": "--photos",
    "kc-export-saved-model": "--output",
    "kc-export-tflite": "--output_dir",
    "kc-litert": "--model",
    "kc-serving-client": "--output_dir",
    "kc-port-resnet34": "--checkpoint",
    "kc-ab-prior": "--train_data",
    "kc-release-model": "--model",
    "kc-contact-sheet": "--input",
    "kc-beam-shards": "--source",
    "kc-beam-colorize": "--input",
}

#: script, arguments that pass flag parsing, the optional module hidden from it, the extra that provides it.
EXTRAS = [
    ("kc-colorize-video", ["--input=film.mp4", "--output=film_color.mp4"], "av", "video"),
    ("kc-serving-client", ["--protocol=grpc", "--output_dir=colorized", "scan.jpg"], "tensorflow_serving", "serving"),
    ("kc-litert", ["--model=m.tflite", "--input=scan.jpg", "--output=scan_color.png"], "ai_edge_litert", "litert"),
    ("kc-export-saved-model", ["--preset=tiny", "--output=served", "--version=1"], "tensorflow_serving", "serving"),
    ("kc-beam-shards", ["--source=photos", "--output=shards"], "apache_beam", "beam"),
    ("kc-beam-colorize", ["--input=scans", "--output=colorized"], "apache_beam", "beam"),
]

# TensorFlow's native start-up log, printed before Python runs whatever the flags say.
_NOISE = ("WARNING: All log messages before absl::InitializeLog()", "I0000 ", "W0000 ", "E0000 ")


def console_scripts():
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    lines = parser["options.entry_points"]["console_scripts"].strip().splitlines()
    return dict(line.replace(" ", "").split("=", 1) for line in lines)


SCRIPTS = sorted(console_scripts())


def _own_lines(stderr):
    return [line for line in stderr.strip().splitlines() if not line.startswith(_NOISE)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``{(script, case): CompletedProcess}`` for every installed script, all started at once."""
    cwd = tmp_path_factory.mktemp("outside_the_checkout")
    (cwd / "scan.jpg").write_bytes(b"")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    jobs = {}
    for script in SCRIPTS:
        jobs[(script, "no arguments")] = ([], env)
        jobs[(script, "--help")] = (["--help"], env)
    for script, args, module, _ in EXTRAS:
        stub = tmp_path_factory.mktemp(f"no_{module}") / module
        stub.mkdir()
        (stub / "__init__.py").write_text(f"raise ImportError('{module} is hidden by the test')\n")
        jobs[(script, f"without {module}")] = (args, {**env, "PYTHONPATH": str(stub.parent)})
    # The core install exports a SavedModel too, without TF Serving's warm-up request.
    core_export = tmp_path_factory.mktemp("core_export") / "colorizer"
    serving_stub = [job_env for (name, case), (_, job_env) in jobs.items() if case == "without tensorflow_serving"][0]
    jobs[("kc-export-saved-model", "core install")] = (
        ["--preset=tiny", f"--output={core_export}", "--version=1", "--nowarmup"], serving_stub)

    def start(key):
        args, job_env = jobs[key]
        return subprocess.run([str(BIN / key[0]), *args], cwd=cwd, env=job_env, capture_output=True, text=True,
                              timeout=300)

    installed = [key for key in jobs if (BIN / key[0]).is_file()]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(installed, pool.map(start, installed)))
    results["cwd"] = cwd
    results["core_export"] = core_export
    return results


def _result(runs, script, case):
    if (script, case) not in runs:
        pytest.skip(f"{script} is not installed in {BIN}: pip install -e {REPO} --no-deps")
    return runs[(script, case)]


def test_every_console_script_has_a_case():
    assert sorted(MISSING) == SCRIPTS, "add the new script's first required flag to MISSING"


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_arguments_exit_2_with_one_line_naming_the_flag(runs, script):
    done = _result(runs, script, "no arguments")
    lines = _own_lines(done.stderr)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"{script}: error: "), done.stderr[-2000:]
    assert MISSING[script] in lines[0], lines[0]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_exits_0_outside_the_checkout(runs, script):
    done = _result(runs, script, "--help")
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert MISSING[script].lstrip("-") in done.stdout, done.stdout[-2000:]  # the command's own flags are listed


@pytest.mark.parametrize("script, args, module, extra", EXTRAS, ids=[e[0] for e in EXTRAS])
def test_missing_extra_is_named_with_exit_2(runs, script, args, module, extra):
    done = _result(runs, script, f"without {module}")
    lines = _own_lines(done.stderr)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"{script}: error: "), done.stderr[-2000:]
    assert f"needs the [{extra}] extra: pip install 'keras_colorize[{extra}]'" in lines[0], lines[0]
    assert sorted(p.name for p in runs["cwd"].iterdir()) == ["scan.jpg"]  # nothing written


def test_core_install_exports_a_saved_model_without_the_serving_extra(runs):
    done = _result(runs, "kc-export-saved-model", "core install")
    assert done.returncode == 0, done.stderr[-2000:]
    version = runs["core_export"] / "1"
    assert (version / "saved_model.pb").is_file()
    assert (version / "assets.extra" / "keras_colorize.json").is_file()  # the export record is still there
    assert not (version / "assets.extra" / "tf_serving_warmup_requests").exists()  # needs tensorflow_serving
