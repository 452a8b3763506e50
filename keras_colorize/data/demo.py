"""Built-in demo data: synthetic landscape scenes, written as real TFRecord shards.

A user without Places365 can still run the whole job: :func:`ensure_demo_shards`
renders a few thousand small scenes with NumPy and writes them with the same
writer and format as real data (:func:`keras_colorize.data.shard_writer.write_shards`),
cached in a folder so the second run writes nothing.

Every scene is drawn from one geometry (sky gradient with clouds, sun and glow,
distant mountains with snow caps, near hills with fields and trees, and in
about half the scenes a lake reflecting everything above it); the scene class
only picks the palette. A day scene and a sunset over the same hills therefore
have a similar luminance layout but different colours, so the colour decoder
has to use global context (the global branch and the class head) to tell an
orange sky from a blue one.

Example::

    from keras_colorize.data import demo, pipeline
    patterns = demo.ensure_demo_shards("~/.cache/keras_colorize/demo")
    train = pipeline.make_dataset(patterns["train"], "train", image_size=64, batch_size=32, seed=0)
"""

import dataclasses
import json
import logging
import os

import numpy as np
from PIL import Image

from keras_colorize import fileio
from keras_colorize.data import places365
from keras_colorize.data import shards_lib
from keras_colorize.data import shard_writer
from keras_colorize.data import photo_repair

_GENERATOR_VERSION = 1  # bump when the renderer changes, so caches are rebuilt


@dataclasses.dataclass(frozen=True)
class Palette:
    """sRGB colours (0..255) of one scene class."""

    sky_top: tuple
    sky_horizon: tuple
    sun: tuple
    glow: tuple
    cloud: tuple
    mountain: tuple
    snow: tuple
    hill: tuple
    field: tuple
    tree: tuple
    water_tint: tuple
    snow_line: float  # fraction of a mountain's height covered by snow
    haze: float  # how much the far mountains fade into the horizon colour


PALETTES = {
    "day_meadow": Palette(
        sky_top=(40, 95, 190), sky_horizon=(170, 205, 235), sun=(255, 250, 225), glow=(255, 245, 200),
        cloud=(245, 245, 250), mountain=(95, 115, 150), snow=(235, 240, 250), hill=(70, 135, 55),
        field=(150, 180, 70), tree=(30, 75, 35), water_tint=(40, 90, 150), snow_line=0.2, haze=0.35,
    ),
    "sunset": Palette(
        sky_top=(70, 50, 120), sky_horizon=(250, 150, 70), sun=(255, 220, 130), glow=(255, 120, 50),
        cloud=(240, 130, 120), mountain=(90, 60, 95), snow=(240, 170, 150), hill=(75, 60, 45),
        field=(150, 105, 60), tree=(40, 30, 35), water_tint=(140, 70, 60), snow_line=0.2, haze=0.45,
    ),
    "winter": Palette(
        sky_top=(120, 150, 190), sky_horizon=(215, 225, 235), sun=(255, 255, 245), glow=(230, 235, 245),
        cloud=(225, 228, 235), mountain=(140, 150, 170), snow=(245, 248, 255), hill=(215, 222, 235),
        field=(235, 238, 245), tree=(35, 60, 50), water_tint=(70, 95, 115), snow_line=0.8, haze=0.3,
    ),
    "autumn": Palette(
        sky_top=(55, 110, 185), sky_horizon=(185, 210, 230), sun=(255, 245, 215), glow=(255, 235, 190),
        cloud=(240, 240, 245), mountain=(110, 95, 105), snow=(235, 235, 240), hill=(190, 95, 35),
        field=(205, 160, 60), tree=(150, 40, 25), water_tint=(45, 80, 120), snow_line=0.1, haze=0.35,
    ),
    "desert": Palette(
        sky_top=(80, 140, 205), sky_horizon=(225, 215, 190), sun=(255, 255, 235), glow=(255, 240, 205),
        cloud=(245, 240, 230), mountain=(165, 85, 55), snow=(230, 200, 170), hill=(215, 170, 105),
        field=(230, 195, 130), tree=(95, 110, 50), water_tint=(40, 140, 150), snow_line=0.0, haze=0.4,
    ),
}
DEMO_CLASSES = list(PALETTES)  # label = position in this list
NUM_DEMO_CLASSES = len(DEMO_CLASSES)
ASPECT = 4 / 3  # rendered width / height, so training crops move


def _smooth_noise(rng, height, width, cells_y, cells_x):
    """Value noise in [0, 1]: a coarse random grid upsampled bicubically."""
    coarse = rng.random((cells_y, cells_x)).astype(np.float32)
    image = Image.fromarray(coarse, mode="F").resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(image)


def _ridge(rng, xs, base, amplitude, octaves=4):
    """1D fractal ridge line (rows, as a fraction of height) over normalized x in [0, 1]."""
    y = np.full_like(xs, base)
    for o in range(octaves):
        freq = (0.7 + 1.0 * rng.random()) * 1.8**o
        y += amplitude / 1.9**o * np.sin(2 * np.pi * freq * xs + rng.uniform(0, 2 * np.pi))
    return y


def _mix(a, b, t):
    return a + (b - a) * t[..., None]


def render_scene(rng, palette, height, width):
    """One synthetic landscape as uint8 ``[height, width, 3]``.

    The geometry comes from ``rng`` alone; ``palette`` only colours it.
    """
    p = {k: np.asarray(v, np.float32) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(palette).items()}
    ys = (np.arange(height, dtype=np.float32) + 0.5)[:, None] / height
    xs = (np.arange(width, dtype=np.float32) + 0.5)[None, :] / height  # square pixels
    x1 = xs[0] / xs[0, -1]
    horizon = rng.uniform(0.5, 0.68)
    has_water = rng.random() < 0.45
    water_top = horizon + rng.uniform(0.08, 0.2) if has_water else 2.0

    # Sky: gradient, sun glow, clouds, sun disk.
    t = np.clip(ys / horizon, 0, 1) ** rng.uniform(0.6, 1.4)
    image = np.broadcast_to(_mix(p["sky_top"], p["sky_horizon"], t[:, 0])[:, None, :], (height, width, 3)).copy()
    sun_x, sun_y = rng.uniform(0.1, 0.9) * xs[0, -1], rng.uniform(0.1, horizon - 0.08)
    sun_r = rng.uniform(0.035, 0.07)
    dist = np.sqrt((xs - sun_x) ** 2 + (ys - sun_y) ** 2)
    image = _mix(image, p["glow"], 0.65 * np.exp(-((dist / (4 * sun_r)) ** 2)))
    clouds = _smooth_noise(rng, height, width, 5, 9) * 0.6 + _smooth_noise(rng, height, width, 10, 18) * 0.4
    cover = rng.uniform(0.45, 0.75)
    cloud_alpha = np.clip((clouds - cover) * 4, 0, 0.9) * (ys < horizon)
    image = _mix(image, p["cloud"] * (0.85 + 0.15 * clouds[..., None]), cloud_alpha)
    image = _mix(image, p["sun"], np.clip((sun_r - dist) * height, 0, 1) * (1 - cloud_alpha))

    # Distant mountains: shaded by slope, snow caps, hazy toward the horizon.
    ridge = _ridge(rng, x1, horizon - rng.uniform(0.12, 0.28), rng.uniform(0.03, 0.08))
    peak = ridge.min()
    below = ys >= ridge[None, :]
    slope = np.gradient(ridge)[None, :] * width
    shade = np.clip(1.0 + 0.8 * slope, 0.75, 1.2)[..., None]
    rock = np.broadcast_to(p["mountain"], image.shape) * shade
    snow_y = ridge + p["snow_line"] * (horizon - ridge) + 0.02 * _smooth_noise(rng, 1, width, 1, 12)[0]
    rock = _mix(rock, p["snow"] * shade, ((ys < snow_y[None, :]) & (ridge[None, :] < peak + 0.12)).astype(np.float32))
    rock = _mix(rock, p["sky_horizon"], p["haze"] * np.clip((ys - peak) / (horizon - peak + 1e-3), 0, 1))
    image = np.where(below[..., None], rock, image)

    # Near hills with field stripes and trees, down to the bottom.
    hill_line = _ridge(rng, x1, horizon + rng.uniform(-0.04, 0.04), rng.uniform(0.015, 0.04), octaves=3)
    land = ys >= hill_line[None, :]
    depth = np.clip((ys - hill_line[None, :]) / 0.4, 0, 1)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (rng.uniform(4, 9) * ys / (0.1 + depth) + rng.uniform(0.5, 2) * xs))
    ground = _mix(np.broadcast_to(p["hill"], image.shape), p["field"], stripes * rng.uniform(0.3, 0.8))
    ground *= (0.85 + 0.3 * _smooth_noise(rng, height, width, 8, 14))[..., None]
    image = np.where(land[..., None], ground, image)
    for _ in range(rng.integers(6, 20)):
        tx = rng.uniform(0, xs[0, -1])
        col = min(width - 1, int(tx * height))
        ty = max(hill_line[col], min(rng.uniform(hill_line[col], 1.0), water_top - 0.02))
        size = 0.02 + 0.06 * (ty - horizon + 0.1)
        # Only the tree's bounding box is touched (a full-frame mask per tree is slow).
        r0, r1 = max(0, int((ty - 2.5 * size) * height)), min(height, int(ty * height) + 1)
        c0, c1 = max(0, int((tx - size) * height)), min(width, int((tx + size) * height) + 2)
        if r0 >= r1 or c0 >= c1:
            continue
        by, bx = ys[r0:r1], xs[:, c0:c1]
        half_width = size * 0.5 * np.clip((by - ty) / (2.5 * size) + 1, 0, 1)  # a cone, widest at its foot
        tree = (np.abs(bx - tx) < half_width) & (by < ty) & (by > ty - 2.5 * size)
        patch = image[r0:r1, c0:c1]
        image[r0:r1, c0:c1] = np.where(tree[..., None], p["tree"] * rng.uniform(0.8, 1.2), patch)

    # Lake: mirror of the scene above its shore line, rippled and tinted.
    if has_water:
        top = int(water_top * height)
        rows = np.arange(top, height)
        src_rows = np.clip(2 * top - rows - 1, 0, height - 1)
        ripple = (2.0 * np.sin(rows[:, None] * 0.9 + np.arange(width)[None, :] * 0.15)).astype(int)
        src_cols = np.clip(np.arange(width)[None, :] + ripple, 0, width - 1)
        reflected = image[src_rows[:, None], src_cols]
        image[top:] = _mix(reflected * 0.85, p["water_tint"], np.full(reflected.shape[:2], 0.35, np.float32))

    image += rng.normal(0, 2.0, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _record_key(seed, split, index):
    return f"{seed}:{split}:{index}"


def render_record(record, short_side):
    """Loader for :func:`shard_writer.write_shards`: renders the scene a demo record names."""
    seed, split, index = record.key.split(":")
    split_id = places365.SPLITS.index(split)
    rng = np.random.default_rng([int(seed), split_id, int(index)])
    height = short_side
    width = int(round(short_side * ASPECT))
    return Image.fromarray(render_scene(rng, PALETTES[record.class_name], height, width)), []


def demo_records(split, count, seed):
    """Balanced records (class = index mod number of classes) for one split."""
    return [
        places365.Record(_record_key(seed, split, i), label, DEMO_CLASSES[label], f"demo/{split}/{i:06d}")
        for i, label in ((i, i % NUM_DEMO_CLASSES) for i in range(count))
    ]


def ensure_demo_shards(
    directory,
    num_train=2000,
    num_val=200,
    num_test=200,
    image_size=64,
    seed=0,
    shard_size=256,
    num_workers=1,
    progress=True,
):
    """Returns the demo shards' file patterns, writing them first unless they are cached.

    Each parameter set gets its own subfolder of ``directory``
    (``demo-v1-64px-seed0-2000-200-200``), completed by a ``manifest.json``
    written last; if that exists, nothing is written.

    Args:
      directory: cache folder (created).
      num_train, num_val, num_test: images per split (balanced over :data:`DEMO_CLASSES`).
      image_size: stored short side (images are ``image_size x 4/3 image_size``).
      seed: generator seed.
      shard_size: images per shard.
      num_workers: writer processes (1 is fastest for the default sizes).
      progress: tqdm progress bars.

    Returns:
      ``{"train": glob, "val": glob, "test": glob, "classes": [names], "directory": subfolder}``
      (a split with count 0 has no key).
    """
    for name, value in (("num_train", num_train), ("num_val", num_val), ("num_test", num_test)):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    if not isinstance(image_size, int) or image_size < 16:
        raise ValueError(f"image_size must be an int >= 16, got {image_size!r}")
    if not directory:
        raise ValueError(f"directory must be a folder path, got {directory!r}")
    counts = {"train": num_train, "val": num_val, "test": num_test}
    sub = os.path.join(
        os.path.expanduser(directory),
        f"demo-v{_GENERATOR_VERSION}-{image_size}px-seed{seed}-{num_train}-{num_val}-{num_test}",
    )
    manifest_path = os.path.join(sub, "manifest.json")
    result = {split: shard_writer.file_pattern(sub, split) for split, count in counts.items() if count}
    result.update(classes=list(DEMO_CLASSES), directory=sub)
    if os.path.exists(manifest_path):
        return result
    os.makedirs(sub, exist_ok=True)
    encode = photo_repair.EncodeConfig(short_side=image_size, jpeg_quality=95, min_side=1, gray_threshold=0.0)
    written = {}
    for split, count in counts.items():
        if count == 0:
            continue
        stats = shard_writer.write_shards(
            demo_records(split, count, seed), sub, split, loader=render_record, config=encode,
            shard_size=shard_size, num_workers=num_workers, seed=seed, progress=progress,
        )
        if stats.num_skipped:
            raise RuntimeError(f"demo generator produced unusable images: {stats.skipped}")
        written[split] = stats.written
        shards_lib.write_summary(sub, split, stats, DEMO_CLASSES, layout="demo", source="keras_colorize.data.demo")
        logging.info("demo %s: %d images in %s", split, stats.num_written, result[split])
    with open(os.path.join(sub, "classes.txt"), "w") as f:
        f.write("# keras_colorize demo scene classes; label = line order\n" + "\n".join(DEMO_CLASSES) + "\n")
    manifest = {
        "version": _GENERATOR_VERSION,
        "image_size": image_size,
        "seed": seed,
        "counts": counts,
        "written": written,
        "classes": DEMO_CLASSES,
    }
    fileio.atomic_write_text(manifest_path, json.dumps(manifest, indent=1))
    return result
