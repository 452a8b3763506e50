"""Preprocessing ops: each gives the same result eagerly and inside Dataset.map, and does what it says."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_colorize import color
from keras_colorize.data import preprocess


def _jpeg(array, quality=95):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo():
    """A smooth, colourful, non-square uint8 image (so crops and flips are visible)."""
    y, x = np.mgrid[0:60, 0:90].astype(np.float32)
    image = np.stack([x / 90 * 255, y / 60 * 255, (np.sin(x / 7) * 0.5 + 0.5) * 255], axis=-1)
    return image.astype(np.uint8)


def _in_map(fn, *args):
    """Runs fn(*args) inside Dataset.map (graph mode, no Python state) and returns the numpy result."""
    ds = tf.data.Dataset.from_tensors(tuple(tf.convert_to_tensor(a) for a in args)).map(lambda *t: fn(*t))
    (out,) = list(ds.as_numpy_iterator())
    return out


def _both(fn, *args):
    eager = fn(*[tf.convert_to_tensor(a) for a in args])
    eager = tuple(e.numpy() for e in eager) if isinstance(eager, tuple) else eager.numpy()
    return eager, _in_map(fn, *args)


def _assert_same(eager, mapped, atol=1e-6):
    if isinstance(eager, tuple):
        for e, m in zip(eager, mapped):
            np.testing.assert_allclose(e, m, atol=atol)
    else:
        np.testing.assert_allclose(eager, mapped, atol=atol)


def test_decode(photo):
    eager, mapped = _both(preprocess.decode, _jpeg(photo))
    _assert_same(eager, mapped)
    assert eager.shape == photo.shape and eager.dtype == np.uint8
    assert np.abs(eager.astype(int) - photo.astype(int)).mean() < 3  # it is the photo


def test_decode_png_with_alpha_gives_three_channels():
    buffer = io.BytesIO()
    Image.fromarray(np.full((4, 5, 4), 200, np.uint8)).save(buffer, format="PNG")
    eager, mapped = _both(preprocess.decode, buffer.getvalue())
    _assert_same(eager, mapped)
    assert eager.shape == (4, 5, 3)


def test_to_float(photo):
    eager, mapped = _both(preprocess.to_float, photo)
    _assert_same(eager, mapped)
    assert eager.dtype == np.float32
    np.testing.assert_allclose(eager, photo / 255.0, atol=1e-6)


@pytest.mark.parametrize("size", [30, 45, 60, 100])
def test_resize_short_side(photo, size):
    image = photo.astype(np.float32) / 255.0  # 60 x 90
    eager, mapped = _both(lambda im: preprocess.resize_short_side(im, size), image)
    _assert_same(eager, mapped, atol=1e-5)
    assert eager.shape == (size, round(90 * size / 60), 3)
    assert eager.min() >= 0.0 and eager.max() <= 1.0
    if size == 60:
        np.testing.assert_array_equal(eager, image)  # already that size: untouched


def test_resize_short_side_portrait():
    image = np.random.default_rng(0).random((90, 40, 3)).astype(np.float32)
    out = preprocess.resize_short_side(image, 20).numpy()
    assert out.shape == (45, 20, 3)


def test_center_crop(photo):
    eager, mapped = _both(lambda im: preprocess.center_crop(im, 40), photo)
    _assert_same(eager, mapped)
    np.testing.assert_array_equal(eager, photo[10:50, 25:65])


def test_random_crop_is_seeded_window(photo):
    seed = tf.constant([3, 7], tf.int64)
    eager, mapped = _both(lambda im, s: preprocess.random_crop(im, 32, s), photo, seed)
    _assert_same(eager, mapped)
    windows = {(t, l) for t in range(60 - 31) for l in range(90 - 31) if np.array_equal(photo[t : t + 32, l : l + 32], eager)}
    assert len(windows) == 1  # a genuine window of the input
    offsets = set()
    for s in range(20):
        crop = preprocess.random_crop(photo, 32, tf.constant([s, 0], tf.int64)).numpy()
        offsets |= {(t, l) for t in range(29) for l in range(59) if np.array_equal(photo[t : t + 32, l : l + 32], crop)}
    assert len(offsets) > 5  # and the seed moves it


def test_random_flip(photo):
    outcomes = set()
    for s in range(16):
        seed = tf.constant([s, 1], tf.int64)
        eager, mapped = _both(preprocess.random_flip, photo, seed)
        _assert_same(eager, mapped)
        if np.array_equal(eager, photo):
            outcomes.add("same")
        elif np.array_equal(eager, photo[:, ::-1]):
            outcomes.add("flipped")
        else:
            raise AssertionError("random_flip returned neither the image nor its mirror")
    assert outcomes == {"same", "flipped"}


def test_to_model_units(photo):
    image = photo.astype(np.float32) / 255.0
    eager, mapped = _both(preprocess.to_model_units, image)
    _assert_same(eager, mapped, atol=1e-5)
    l_input, ab = eager
    assert l_input.shape == (60, 90, 1) and ab.shape == (60, 90, 2)
    ref_l, ref_ab = color.rgb_to_model(image)
    np.testing.assert_allclose(l_input, ref_l.numpy(), atol=1e-6)
    np.testing.assert_allclose(ab, ref_ab.numpy(), atol=1e-6)
    assert 0.0 <= l_input.min() and l_input.max() <= 1.0 and 0.0 <= ab.min() and ab.max() <= 1.0


def test_train_image(photo):
    seed = tf.constant([11, 5], tf.int64)
    eager, mapped = _both(lambda b, s: preprocess.train_image(b, 40, s), _jpeg(photo), seed)
    _assert_same(eager, mapped, atol=1e-5)
    assert eager.shape == (40, 40, 3) and eager.dtype == np.uint8


def test_scale_jitter_zooms_into_a_photo_that_has_no_room_to_crop():
    """A square photo at the crop size gets flips only without jitter, zoomed windows with it."""
    y, x = np.mgrid[0:48, 0:48].astype(np.float32)
    square = np.stack([x / 48 * 255, y / 48 * 255, (np.sin(x / 5) * 0.5 + 0.5) * 255], -1).astype(np.uint8)
    encoded = _jpeg(square)
    full = preprocess.resize_short_side_uint8(preprocess.decode(encoded), 48).numpy().astype(np.int32)
    plain, jittered = [], []
    for i in range(12):
        seed = tf.constant([i, 3], tf.int64)
        plain.append(preprocess.train_image(encoded, 48, seed).numpy().astype(np.int32))
        jittered.append(preprocess.train_image(encoded, 48, seed, scale_jitter=1.5).numpy().astype(np.int32))
    for view in plain:  # the whole photo, or its mirror
        assert np.array_equal(view, full) or np.array_equal(view, full[:, ::-1])
    zoomed = [v for v in jittered if not (np.array_equal(v, full) or np.array_equal(v, full[:, ::-1]))]
    assert len(zoomed) >= 8
    for view in jittered:
        assert view.shape == (48, 48, 3) and view.dtype == np.int32
        # A zoom of at most 1.5 spans at least 2/3 of the red ramp (x / 48 * 255) across the window.
        span = np.abs(view[:, -1, 0].mean() - view[:, 0, 0].mean())
        assert 2 / 3 * 255 - 25 <= span <= 255 + 5
    again = preprocess.train_image(encoded, 48, tf.constant([5, 3], tf.int64), scale_jitter=1.5).numpy()
    np.testing.assert_array_equal(again, jittered[5])  # seeded
    eager, mapped = _both(lambda b, s: preprocess.train_image(b, 48, s, 1.5), encoded, tf.constant([7, 3], tf.int64))
    _assert_same(eager, mapped, atol=1e-5)
    with pytest.raises(ValueError, match="scale_jitter"):
        preprocess.train_image(encoded, 48, tf.constant([1, 1], tf.int64), scale_jitter=0.5)


def test_eval_image_is_resized_center(photo):
    eager, mapped = _both(lambda b: preprocess.eval_image(b, 30), _jpeg(photo))
    _assert_same(eager, mapped, atol=1e-5)
    assert eager.shape == (30, 30, 3)
    decoded = preprocess.to_float(preprocess.decode(_jpeg(photo)))
    expected = tf.image.resize(decoded, (30, 45), antialias=True).numpy()[:, 7:37]
    assert eager.dtype == np.uint8
    np.testing.assert_allclose(eager / 255.0, np.clip(expected, 0, 1), atol=0.5 / 255 + 1e-5)
