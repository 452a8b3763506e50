"""Full-resolution colorization API: sizes, L preservation, formats, model formats."""

import io
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image
from skimage import color as skcolor

from keras_colorize.inference import images
from keras_colorize.inference import api
from keras_colorize.models import build_colorizer, get_preset

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def colorizer(tiny_model_path):
    return api.Colorizer.from_path(tiny_model_path, batch_size=4)


def _lightness_sample(rgb, index):
    """skimage's L* at sampled flat pixel indices (an independent reference)."""
    flat = rgb.reshape(-1, rgb.shape[-1])[index]
    if flat.shape[-1] == 1:
        flat = np.repeat(flat, 3, axis=-1)
    scale = 65535.0 if flat.dtype == np.uint16 else 255.0
    return skcolor.rgb2lab(flat[None].astype(np.float64) / scale)[0, :, 0]


def test_bw_photos_keep_size_and_lightness(colorizer, bw_dir):
    """Every real B&W photo (up to 4764x3759): output has its size and its L* within 1 unit."""
    paths = sorted(p for p in bw_dir.iterdir() if images.is_image_path(p))
    assert len(paths) >= 10
    rng = np.random.default_rng(0)
    worst = 0.0
    chroma = []
    for path in paths:
        picture = images.read_image(path)
        (rgb, alpha), = colorizer.colorize_pictures([picture])
        assert rgb.shape == (picture.height, picture.width, 3), path.name
        assert rgb.dtype == np.uint8 and alpha is None
        with Image.open(path) as original:
            assert (original.width, original.height) == (picture.width, picture.height)
        index = rng.choice(picture.height * picture.width, size=min(200_000, picture.height * picture.width),
                           replace=False)
        diff = np.abs(_lightness_sample(rgb, index) - _lightness_sample(picture.pixels, index))
        worst = max(worst, diff.max())
        lab = skcolor.rgb2lab(rgb.reshape(-1, 3)[index[:5000]][None] / 255.0)[0]
        chroma.append(np.hypot(lab[:, 1], lab[:, 2]).mean())
    assert worst <= 1.0, f"max |L_out - L_in| = {worst:.3f}"
    assert np.mean(chroma) > 1.0, "outputs are gray: the prediction did not reach the output"


def _encode(image, fmt, **kwargs):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_modes_and_formats(colorizer, tmp_path, landscapes_dir):
    """Gray, RGB, RGBA, LA, palette (with transparency), 1-bit, CMYK, 16-bit; JPEG/PNG/TIFF/WebP/BMP."""
    photo = Image.open(sorted(landscapes_dir.glob("*.jpg"))[0]).convert("RGB").resize((120, 90))
    alpha = Image.linear_gradient("L").resize((120, 90))
    rgba = photo.copy()
    rgba.putalpha(alpha)
    gray16 = Image.fromarray((np.asarray(photo.convert("L"), np.uint16) * 257 + 3).astype(np.uint16))
    palette = photo.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    cases = {
        "gray.jpg": (photo.convert("L"), "JPEG", {}),
        "rgb.png": (photo, "PNG", {}),
        "rgba.png": (rgba, "PNG", {}),
        "la.png": (photo.convert("L").convert("LA"), "PNG", {}),
        "palette.gif.png": (palette, "PNG", {}),
        "palette_t.png": (palette, "PNG", {"transparency": 0}),
        "bilevel.bmp": (photo.convert("1"), "BMP", {}),
        "cmyk.tif": (photo.convert("CMYK"), "TIFF", {}),
        "gray16.png": (gray16, "PNG", {}),
        "gray16.tif": (gray16, "TIFF", {}),
        "rgba.webp": (rgba, "WEBP", {"lossless": True}),
        "rgb.bmp": (photo, "BMP", {}),
    }
    for name, (image, fmt, kwargs) in cases.items():
        path = tmp_path / name
        path.write_bytes(_encode(image, fmt, **kwargs))
        picture = images.read_image(path)
        assert picture.format == fmt and (picture.width, picture.height) == (120, 90), name
        (rgb, out_alpha), = colorizer.colorize_pictures([picture])
        assert rgb.shape == (90, 120, 3), name
        out = tmp_path / "out" / name
        images.write_image(out, rgb, alpha=out_alpha, image_format=picture.format)
        back = Image.open(out)
        assert back.format == fmt and back.size == (120, 90), name
        assert "icc_profile" not in back.info, name
        if name in ("rgba.png", "rgba.webp"):
            np.testing.assert_array_equal(np.asarray(back)[..., 3], np.asarray(alpha), err_msg=name)
        if name == "la.png":
            assert back.mode == "RGBA"
        if name == "palette_t.png":
            assert out_alpha is not None and (out_alpha == 0).any()
        if name.startswith("gray16"):
            assert picture.pixels.dtype == np.uint16 and picture.is_gray
            assert rgb.dtype == np.uint16
    # 16-bit gray PNG round-trips as 16-bit colour PNG (TF's decoder keeps all 16 bits).
    back16 = images.read_image(tmp_path / "out" / "gray16.png")
    assert back16.pixels.dtype == np.uint16 and back16.pixels.shape == (90, 120, 3)


def test_exif_orientation_is_applied(colorizer, tmp_path, landscapes_dir):
    photo = Image.open(sorted(landscapes_dir.glob("*.jpg"))[1]).convert("RGB").resize((160, 100))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    path = tmp_path / "rotated.jpg"
    photo.save(path, exif=exif.tobytes(), quality=95)
    picture = images.read_image(path)
    assert (picture.width, picture.height) == (100, 160)
    upright = np.asarray(photo.transpose(Image.Transpose.ROTATE_270).convert("L"), np.float64)
    assert np.abs(picture.pixels.mean(axis=-1) - upright).mean() < 6  # JPEG noise only
    out = colorizer.colorize(str(path))
    assert out.size == (100, 160)


def test_api_types(colorizer, landscapes_dir):
    photo = Image.open(sorted(landscapes_dir.glob("*.jpg"))[2]).convert("L").resize((96, 72))
    out = colorizer.colorize(photo)
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (96, 72)
    as_float = np.asarray(photo, np.float32) / 255.0
    outs = colorizer.colorize_batch([as_float, np.asarray(photo), np.dstack([np.asarray(photo)] * 4)])
    assert outs[0].dtype == np.float32 and outs[0].shape == (72, 96, 3) and 0 <= outs[0].min() <= outs[0].max() <= 1
    assert outs[1].dtype == np.uint8 and outs[1].shape == (72, 96, 3)
    assert outs[2].shape == (72, 96, 4) and np.array_equal(outs[2][..., 3], np.asarray(photo))
    np.testing.assert_allclose(outs[0] * 255.0, outs[1], atol=1.01)
    with pytest.raises(ValueError, match="image must have shape"):
        colorizer.colorize(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(ValueError, match="does not exist"):
        api.Colorizer.from_path("/nonexistent/model.keras")
    with pytest.raises(ValueError, match="batch_size"):
        api.Colorizer(build_colorizer(get_preset("tiny")), batch_size=0)


@pytest.mark.slow
def test_savedmodel_matches_keras(tiny_model_path, colorizer, tmp_path, landscapes_dir):

    import keras_colorize.models  # noqa: F401

    model = keras.saving.load_model(tiny_model_path)
    export_dir = tmp_path / "saved_model"
    model.export(str(export_dir), verbose=False)
    from_savedmodel = api.Colorizer.from_path(export_dir)
    assert from_savedmodel.image_size == colorizer.image_size == 64
    photo = np.asarray(Image.open(sorted(landscapes_dir.glob("*.jpg"))[3]).convert("L"))
    a = colorizer.colorize(photo)
    b = from_savedmodel.colorize(photo)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


@pytest.mark.slow
def test_twelve_megapixel_in_bounded_memory(tiny_model_path, tmp_path):
    """A 4000x3000 JPEG through the CLI in a fresh process: right size, peak RSS under 3 GB."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (300, 400), dtype=np.uint8)
    Image.fromarray(base).resize((4000, 3000), Image.BICUBIC).save(tmp_path / "big.jpg", quality=90)
    (tmp_path / "in").mkdir()
    (tmp_path / "big.jpg").rename(tmp_path / "in" / "big.jpg")
    script = (
        "import sys\n"
        "from keras_colorize import colorize\n"
        "sys.argv = ['kc', '--model', sys.argv[1], '--input', sys.argv[2], '--output', sys.argv[3], '--noprogress']\n"
        "try:\n    colorize.run()\n"
        "except SystemExit as e:\n    code = e.code\n"
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking
        # parent (this pytest process) across exec, VmHWM starts afresh.
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print('RSS_KB', hwm.split()[1])\n"
        "sys.exit(code)\n")
    result = subprocess.run([sys.executable, "-c", script, str(tiny_model_path), str(tmp_path / "in"),
                             str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rss_gb = int(result.stdout.split("RSS_KB")[1].split()[0]) / 1024**2
    print(f"12 MP colorize peak RSS {rss_gb:.2f} GB")
    assert rss_gb < 3.0, f"peak RSS {rss_gb:.2f} GB"
    with Image.open(tmp_path / "out" / "big.jpg") as out:
        assert out.size == (4000, 3000) and out.mode == "RGB"


@pytest.fixture()
def bundled(tiny_model_path, tmp_path, monkeypatch):
    """A package folder holding the tiny model as the bundled ``scenes`` model."""
    from keras_colorize import pretrained

    folder = tmp_path / "pretrained"
    folder.mkdir()
    monkeypatch.setattr(pretrained, "_HERE", folder)
    return folder


def test_bundled_name_is_resolved_or_clearly_missing(tiny_model_path, bundled):
    from keras_colorize.inference import model_spec

    for make in (lambda: api.load_predictor("scenes"), lambda: api.Colorizer("scenes"),
                 lambda: api.Colorizer.from_path("scenes")):
        with pytest.raises(ValueError, match="the bundled model 'scenes' is missing from this installation"):
            make()
    (bundled / "scenes.keras").write_bytes(tiny_model_path.read_bytes())
    assert model_spec.locate("scenes") == bundled / "scenes.keras"
    assert model_spec.locate(str(tiny_model_path)) == tiny_model_path
    colorizer = api.Colorizer("scenes", batch_size=2)
    assert colorizer.image_size == 64 and api.Colorizer.from_path("scenes").image_size == 64
    gray = np.full((30, 40), 120, np.uint8)
    assert colorizer.colorize(gray).shape == (30, 40, 3)


def test_colorize_cli_uses_the_bundled_default(tiny_model_path, tmp_path):
    """No --model: the bundled default (here the tiny model placed as the package's scenes.keras)."""
    folder = tmp_path / "pretrained"
    folder.mkdir()
    source = tmp_path / "in"
    source.mkdir()
    Image.fromarray(np.full((20, 30), 90, np.uint8)).save(source / "a.png")
    script = ("import pathlib, sys\n"
              "from keras_colorize import colorize, pretrained\n"
              "pretrained._HERE = pathlib.Path(sys.argv[1])\n"
              "sys.argv = ['kc-colorize', '--input', sys.argv[2], '--output', sys.argv[3], '--noprogress']\n"
              "colorize.run()\n")
    args = [sys.executable, "-c", script, str(folder), str(source), str(tmp_path / "out")]
    missing = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "kc-colorize: error: the bundled model 'scenes' is missing" in missing.stderr
    (folder / "scenes.keras").write_bytes(tiny_model_path.read_bytes())
    result = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "out" / "a.png").is_file()
    json_report = (tmp_path / "out" / "colorize_report.json").read_text()
    assert '"model": "scenes"' in json_report
