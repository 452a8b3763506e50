"""Evaluation: metrics against an independent NumPy/skimage computation, reports, shards."""

import csv
import json
import warnings
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from skimage import color as skcolor
from skimage.metrics import structural_similarity

from keras_colorize.evaluation import evaluator
from keras_colorize.inference import api

SIZE = 64  # the tiny model's input: evaluation views equal the files, no resampling in the test


@pytest.fixture(scope="module")
def photos(landscapes_dir, tmp_path_factory):
    """Eight real landscape photos as 64x64 PNGs (lossless, so the views are exactly these pixels)."""
    folder = tmp_path_factory.mktemp("photos")
    names = sorted(p.name for p in landscapes_dir.glob("*.jpg"))[::47][:8]
    for name in names:
        with Image.open(landscapes_dir / name) as image:
            image.convert("RGB").resize((SIZE, SIZE), Image.LANCZOS).save(folder / f"{name[:-4]}.png")
    return folder


def _reference_metrics(rgb, ab_pred):
    """Independent per-image metrics: NumPy + skimage only."""
    lab = skcolor.rgb2lab(rgb / 255.0)
    l_in = lab[..., :1] / 100.0
    ab_true = (lab[..., 1:] + 128.0) / 255.0
    diff = ab_pred - ab_true
    lab_pred = np.concatenate([lab[..., :1], ab_pred * 255.0 - 128.0], axis=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "negative Z values clipped": out-of-gamut predictions
        rgb_pred = np.round(np.clip(skcolor.lab2rgb(lab_pred), 0, 1) * 255.0)
    lab_got = skcolor.rgb2lab(rgb_pred / 255.0)
    got = np.concatenate([lab_got[..., :1] / 100.0, (lab_got[..., 1:] + 128.0) / 255.0], axis=-1)
    truth = np.concatenate([l_in, ab_true], axis=-1)
    mse_rgb = np.mean((rgb_pred - rgb) ** 2)

    def colorfulness(image):
        r, g, b = image[..., 0], image[..., 1], image[..., 2]
        rg, yb = r - g, 0.5 * (r + g) - b
        return np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())

    return {
        "mae": np.mean(np.abs(diff)),
        "mse_ab": np.mean(diff**2),
        "mse_lab": np.mean((got - truth) ** 2),
        "psnr": 10 * np.log10(255.0**2 / mse_rgb) if mse_rgb > 0 else np.inf,
        "ssim": structural_similarity(rgb, rgb_pred, data_range=255, channel_axis=-1, gaussian_weights=True,
                                      sigma=1.5, use_sample_covariance=False),
        "colorfulness": colorfulness(rgb_pred),
        "colorfulness_true": colorfulness(rgb),
    }


def test_metrics_match_independent_computation(tiny_model_path, photos):
    colorizer = api.Colorizer.from_path(tiny_model_path)
    result, grid = evaluator.evaluate({"tiny": colorizer}, str(photos), SIZE, batch_size=3, grid_rows=2,
                                         progress=False)
    assert result["num_images"] == 8 and len(grid) == 2
    expected = {"tiny": [], evaluator.GRAY_BASELINE: []}
    for row in result["per_image"]:
        rgb = np.asarray(Image.open(photos / row["name"]).convert("RGB"), np.float64)
        l_in = skcolor.rgb2lab(rgb / 255.0)[..., :1] / 100.0
        predictions = {"tiny": colorizer.predict_ab(l_in[None].astype(np.float32))[0].astype(np.float64),
                       evaluator.GRAY_BASELINE: np.full(l_in.shape[:2] + (2,), 128.0 / 255.0)}
        for name, ab_pred in predictions.items():
            reference = _reference_metrics(rgb, ab_pred)
            expected[name].append(reference)
            got = row[name]
            assert got["mae"] == pytest.approx(reference["mae"], rel=2e-3, abs=2e-5), (name, row["name"])
            assert got["mse_ab"] == pytest.approx(reference["mse_ab"], rel=2e-3, abs=2e-6)
            assert got["mse_lab"] == pytest.approx(reference["mse_lab"], rel=1e-2, abs=2e-6)
            assert got["psnr"] == pytest.approx(reference["psnr"], abs=0.05)
            assert got["ssim"] == pytest.approx(reference["ssim"], abs=2e-3)
            # abs: skimage's rounded D65 white makes its "gray" very slightly tinted (see color.py)
            assert got["colorfulness"] == pytest.approx(reference["colorfulness"], rel=1e-3, abs=0.15)
            assert row["colorfulness_true"] == pytest.approx(reference["colorfulness_true"], rel=1e-3)
    for name, references in expected.items():
        mean = result["models"][name]["mean"]
        for key in ("mae", "mse_ab", "psnr", "colorfulness"):
            assert mean[key] == pytest.approx(np.mean([r[key] for r in references]), rel=2e-3, abs=0.15)
        ratio = np.mean([r["colorfulness"] for r in references]) / np.mean(
            [r["colorfulness_true"] for r in references])
        assert mean["colorfulness_ratio"] == pytest.approx(ratio, rel=2e-3, abs=0.01)
    gray = result["models"][evaluator.GRAY_BASELINE]["mean"]
    assert gray["colorfulness"] == 0.0 and gray["colorfulness_ratio"] == 0.0
    assert gray["mae"] > 0.005  # real colour photos are not gray


def test_cli_writes_json_table_grid_and_classes(tiny_model_path, photos, tmp_path):
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "scene"])
        for path in sorted(photos.glob("*.png")):
            writer.writerow([path.name, "".join(c for c in path.stem if c.isalpha())])
    out = tmp_path / "eval"
    result = subprocess.run(
        [sys.executable, "-m", "keras_colorize.evaluate", "--model", f"P1 tiny={tiny_model_path}",
         "--model", f"again={tiny_model_path}", f"--data={photos}", f"--output={out}", "--grid_rows=3",
         f"--labels_csv={labels}", "--label_column=scene", "--noprogress"],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    table = (out / "metrics.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| Model | Average MAE")
    assert [r.split("|")[1].strip() for r in rows[1:4]] == ["Gray baseline", "P1 tiny", "again"]
    assert "| Gray baseline |" in result.stdout
    data = json.loads((out / "metrics.json").read_text())
    assert data["num_images"] == 8 and set(data["models"]) == {"Gray baseline", "P1 tiny", "again"}
    assert data["models"]["P1 tiny"]["mean"] == data["models"]["again"]["mean"]
    assert set(data["per_class"]) == {"clouds", "shine", "sunrise"}
    assert sum(entry["count"] for entry in data["per_class"].values()) == 8
    with Image.open(out / "grid.png") as grid:
        columns, rows_ = 5, 3  # input, gray, two models, ground truth
        assert grid.width == columns * (192 + 4) + 4 and grid.height == 28 + rows_ * (192 + 4) + 4
    bad = subprocess.run([sys.executable, "-m", "keras_colorize.evaluate", "--model", "x=/nope.keras",
                          f"--data={photos}", f"--output={out}"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "does not exist" in bad.stderr


def test_shards_and_chosen_grid_images(tiny_model_path, tmp_path):
    from keras_colorize.data import demo

    shards = demo.ensure_demo_shards(tmp_path / "demo", num_train=8, num_val=8, num_test=20, image_size=64)
    config = evaluator.EvalConfig(models=(("tiny", str(tiny_model_path)),), data=shards["test"],
                                     output=str(tmp_path / "eval"), grid_images=("3", "0"), batch_size=8)
    result = evaluator.run(config, progress=False)
    assert result["num_images"] == 20
    assert result["per_class"], "demo shards carry class labels"
    assert sum(entry["count"] for entry in result["per_class"].values()) == 20
    assert len(result["grid_names"]) == 2
    names = [row["name"] for row in result["per_image"]]
    assert result["grid_names"] == [names[3], names[0]]
    with pytest.raises(ValueError, match="model names must be unique"):
        evaluator.EvalConfig(models=(("a", str(tiny_model_path)), ("a", str(tiny_model_path))),
                                data="x", output="y").validate()


def test_bundled_model_names_and_unwritable_output(tiny_model_path, photos, tmp_path, monkeypatch):
    from keras_colorize import pretrained

    assert evaluator.parse_model_spec("scenes") == ("scenes", "scenes")
    assert evaluator.parse_model_spec("P1=scenes") == ("P1", "scenes")
    assert evaluator.parse_model_spec(f"{tiny_model_path}") == ("tiny", str(tiny_model_path))
    monkeypatch.setattr(pretrained, "_HERE", tmp_path)
    config = evaluator.EvalConfig(models=(evaluator.parse_model_spec("scenes"),), data=str(photos),
                                     output=str(tmp_path / "eval"), max_images=2, grid_rows=0)
    with pytest.raises(ValueError, match="the bundled model 'scenes' is missing"):
        config.validate()
    (tmp_path / "scenes.keras").write_bytes(tiny_model_path.read_bytes())
    result = evaluator.run(config, progress=False)
    assert result["num_images"] == 2 and result["models"]["scenes"]["input_size"] == 64
    (tmp_path / "a_file").write_text("x")
    blocked = evaluator.EvalConfig(models=(("scenes", "scenes"),), data=str(photos),
                                      output=str(tmp_path / "a_file" / "eval"))
    with pytest.raises(ValueError, match="output '.*a_file/eval' is not writable"):
        evaluator.run(blocked, progress=False)


def test_evaluate_exit_codes(photos, tmp_path):
    for args, expected in (([f"--data={photos}", f"--output={tmp_path}"], "kc-evaluate: error: --model is required"),
                           (["--model", "x=/nope.keras", f"--data={photos}", f"--output={tmp_path}"],
                            "kc-evaluate: error: model x='/nope.keras' does not exist"),
                           (["--model", "scenes", f"--data={photos}", f"--output={tmp_path}", "--max_images=0"],
                            "kc-evaluate: error: ")):
        result = subprocess.run([sys.executable, "-m", "keras_colorize.evaluate", *args], capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 2, (args, result.stderr[-2000:])
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith(expected), (args, result.stderr)


def test_guided_models_get_hint_rows_a_reference_row_and_the_psnr_plot(tiny_guided_model_path, tiny_model_path, photos,
                                                                        tmp_path):
    out = tmp_path / "eval"
    result = subprocess.run(
        [sys.executable, "-m", "keras_colorize.evaluate", "--model", f"guided={tiny_guided_model_path}",
         "--model", f"auto={tiny_model_path}", f"--data={photos}", f"--output={out}", "--grid_rows=0",
         "--hint_points=0,1,5", "--noprogress"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((out / "metrics.json").read_text())
    # Only the guided model gets hint rows; its 0-point row is its own row.
    assert set(data["hint_rows"]) == {"guided + 1 hint", "guided + 5 hints", "guided + reference (ground truth)"}
    assert {e["model"] for e in data["hint_rows"].values()} == {"guided"}
    assert data["hint_rows"]["guided + 5 hints"]["hints"] == 5
    assert data["hint_rows"]["guided + reference (ground truth)"]["reference"] is True
    own = data["models"]["guided"]["mean"]["mae"]
    hinted = [data["hint_rows"][n]["mean"]["mae"] for n in ("guided + 1 hint", "guided + 5 hints")]
    assert all(abs(mae - own) > 1e-6 for mae in hinted)  # the hints reached the model
    per_image = data["per_image"][0]
    assert "guided + 5 hints" in per_image and "auto + 1 hint" not in per_image
    table = (out / "metrics.md").read_text()
    hint_table = table[table.index("| Model | Hint points"):]
    hint_lines = [line for line in hint_table.splitlines() if line.startswith("| guided |")]
    assert [line.split("|")[2].strip() for line in hint_lines] == ["0", "1", "5", "0"]
    with Image.open(out / "psnr_vs_hints.png") as plot:
        assert plot.size == (640, 400)
    # Same seed, same hints: a second run gives the same figures.
    again = evaluator.run(evaluator.EvalConfig(models=(("guided", str(tiny_guided_model_path)),), data=str(photos),
                                               output=str(tmp_path / "again"), grid_rows=0, hint_points=(0, 1, 5),
                                               image_size=64), progress=False)
    assert again["hint_rows"]["guided + 5 hints"]["mean"] == data["hint_rows"]["guided + 5 hints"]["mean"]
    with pytest.raises(ValueError, match="hint_points"):
        evaluator.EvalConfig(models=(("g", str(tiny_guided_model_path)),), data=str(photos), output=str(tmp_path),
                             hint_points=(0, 5, 5)).validate()
