"""Evaluate colorizers like the paper: metrics table, per-class figures, comparison grid.

The library behind ``kc-evaluate``. Every model (and the "predict gray"
baseline, always included) colorizes the same evaluation views: each test
image resized (short side, antialiased) and center-cropped to
``image_size`` (default: the largest model input), the view the data
pipeline's ``"test"`` split gives. A model with a smaller input sees that
view resized to its input, and its a*b* is upsampled back (as the
full-resolution :class:`keras_colorize.inference.api.Colorizer` does), so every
row of the table is scored against the same ground truth.

Metrics come from :mod:`keras_colorize.evaluation.metrics` (one implementation shared
with training validation); definitions are in docs/colorize.md, "Evaluate like
the paper".

Outputs in ``output``: ``metrics.json`` (config, averages, per-class and
per-image values), ``metrics.md`` (a table laid out like the paper's Tables
2 and 4, one row per model) and ``grid.png`` (like its Figures 3 and 4:
input, each model, ground truth; one row per image).

A guided model (``hints=True``) also gets *hint rows*, as Zhang et al. 2017
(Fig. 6) measured theirs: for each N in ``hint_points`` (default 0, 1, 2, 5,
10, 20, 50; N = 0 is the model's own row) the model colorizes with N points
drawn from the ground truth (:func:`keras_colorize.guidance.hint_ops.sample_hints`,
a fixed seed per batch, the points of N among those of any larger N), and one
row gets the ground truth's own reference histogram. ``psnr_vs_hints.png``
plots PSNR against N.

Example::

    from keras_colorize.evaluation import evaluator
    result = evaluator.run(evaluator.EvalConfig(
        models=(("P1", "runs/p1/best.keras"),), data="shards/test-*", output="eval/"))
    result["models"]["P1"]["mean"]["mae"]
"""

import collections
import csv
import dataclasses
import itertools
import json
import pathlib

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from keras_colorize import color
from keras_colorize import fileio
from keras_colorize.inference import batching
from keras_colorize.inference import images
from keras_colorize.inference import merge
from keras_colorize.inference import model_spec
from keras_colorize.evaluation import metrics
from keras_colorize import pretrained
from keras_colorize.data import features
from keras_colorize.data import preprocess
from keras_colorize.guidance import hint_ops

GRAY_BASELINE = "Gray baseline"
#: Hint counts of a guided model's hint rows (Zhang et al. 2017 plot 0 to 50 and more points).
HINT_POINTS = (0, 1, 2, 5, 10, 20, 50)
REFERENCE_ROW = "reference (ground truth)"
METRIC_KEYS = ("mae", "mse_ab", "mse_lab", "psnr", "ssim", "colorfulness")
_SHARD_SUFFIXES = (".tfrecord", ".tfrecords", ".tfr")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """What to evaluate.

    Attributes:
      models: ``((display name, spec), ...)``: bundled model names (``"scenes"``),
        ``.keras`` files or SavedModel folders.
      data: a folder of colour images (searched recursively; the first folder
        level is the class label when images sit in sub-folders), or a glob
        of TFRecord shards (a folder of ``*.tfrecord*`` shards also works).
      output: folder for metrics.json, metrics.md and grid.png.
      image_size: evaluation resolution; None = the largest model input size.
      batch_size: images per network call.
      max_images: evaluate at most this many images (None: all).
      grid_rows: rows of the comparison grid (a seeded random sample).
      grid_images: names of images to show instead (relative paths for a
        folder, ``source`` or index for shards).
      seed: seed of the grid sample.
      labels_csv: optional CSV giving each image's class for a folder
        (column ``file`` = path relative to ``data``, plus ``label_column``).
      label_column: the class column of ``labels_csv``.
      hint_points: hint counts of a guided model's hint rows (0 = its own row).
      reference_row: a guided model also gets a row with the ground truth's reference.
    """

    models: tuple
    data: str
    output: str
    image_size: int | None = None
    batch_size: int = 16
    max_images: int | None = None
    grid_rows: int = 6
    grid_images: tuple = ()
    seed: int = 0
    labels_csv: str | None = None
    label_column: str = "class"
    hint_points: tuple = HINT_POINTS
    reference_row: bool = True

    def validate(self):
        names = [name for name, _ in self.models]
        if not self.models:
            raise ValueError("models must name at least one model (NAME=PATH)")
        if len(set(names)) != len(names) or GRAY_BASELINE in names or any(not n for n in names):
            raise ValueError(f"model names must be unique, non-empty and not {GRAY_BASELINE!r}, got {names}")
        for name, path in self.models:
            model_spec.locate(path, label=f"model {name}=")
        if self.image_size is not None and (not isinstance(self.image_size, int) or self.image_size < 8):
            raise ValueError(f"image_size must be an int >= 8 or None, got {self.image_size!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {self.batch_size!r}")
        if self.max_images is not None and self.max_images < 1:
            raise ValueError(f"max_images must be positive or None, got {self.max_images!r}")
        if self.labels_csv is not None and not pathlib.Path(self.labels_csv).is_file():
            raise ValueError(f"labels_csv {self.labels_csv!r} is not a file")
        if self.grid_rows < 0:
            raise ValueError(f"grid_rows must be >= 0, got {self.grid_rows!r}")
        points = self.hint_points
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in points) or len(set(points)) != len(
                points):
            raise ValueError(f"hint_points must be distinct integers >= 0, got {points!r}")


def parse_model_spec(spec):
    """``"NAME=SPEC"`` -> ``(NAME, SPEC)``; a bare path is named after its file, a bare bundled name after itself.

    SPEC is a bundled model name (``"scenes"``), a ``.keras`` file or a SavedModel folder.
    """
    if pretrained.is_name(spec):
        return spec, spec
    if "=" in spec:
        name, path = spec.split("=", 1)
    else:
        path = spec
        name = pathlib.Path(spec.rstrip("/")).stem
    if not name or not path:
        raise ValueError(f"model must be NAME=SPEC, got {spec!r}")
    return name, path


# ----------------------------------------------------------------------------
# Test data: (name, class name or None, L (S,S,1), ab (S,S,2), rgb uint8 (S,S,3))
# ----------------------------------------------------------------------------


def _as_uint8(view):
    """The pipeline's evaluation view is uint8; accept a float view too."""
    return view if view.dtype == tf.uint8 else color.float_to_uint8(view)


def _eval_view(rgb_uint8, image_size):
    """The pipeline's ``test`` view of a decoded image: short side resized, center crop, uint8."""
    resized = preprocess.resize_short_side_uint8(tf.constant(rgb_uint8), image_size)
    return _as_uint8(preprocess.center_crop(resized, image_size))


def read_labels(labels_csv, label_column):
    """``{relative file: class}`` from a CSV with a ``file`` column and ``label_column``."""
    with open(labels_csv, newline="") as f:
        reader = csv.DictReader(f)
        if "file" not in (reader.fieldnames or []) or label_column not in reader.fieldnames:
            raise ValueError(f"labels_csv {labels_csv!r} needs columns 'file' and {label_column!r}, "
                             f"has {reader.fieldnames}")
        return {row["file"]: row[label_column] for row in reader if row[label_column]}


def _folder_examples(folder, image_size, failures, labels=None):
    folder = pathlib.Path(folder)
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and images.is_image_path(p)
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    for path in paths:
        relative = path.relative_to(folder)
        if labels is not None:
            label = labels.get(relative.as_posix())
        else:
            label = relative.parts[0] if len(relative.parts) > 1 else None
        try:
            picture = images.read_image(path)
        except images.ImageReadError as e:
            failures.append({"file": str(relative), "reason": str(e)})
            continue
        pixels = picture.pixels
        if pixels.dtype == np.uint16:  # the ground truth is an 8-bit image, as in the shards
            pixels = images.to_uint8(pixels)
        if pixels.shape[-1] == 1:
            pixels = np.repeat(pixels, 3, axis=-1)
        view = _eval_view(pixels, image_size)
        l_input, ab = color.rgb_to_model(view)
        yield str(relative), label, l_input.numpy(), ab.numpy(), view.numpy()


def _shard_files(data):
    path = pathlib.Path(data)
    if path.is_dir():
        files = sorted(str(p) for p in path.iterdir() if any(s in p.name for s in _SHARD_SUFFIXES))
        if not files:
            raise ValueError(f"data {data!r}: folder has neither images nor TFRecord shards")
        return files
    files = sorted(tf.io.gfile.glob(data))
    if not files:
        raise ValueError(f"data {data!r} matches no files")
    return files


def _shard_examples(files, image_size):
    def parse(serialized):
        example = features.parse_example(serialized)
        view = _as_uint8(preprocess.eval_image(example[features.IMAGE], image_size))
        l_input, ab = color.rgb_to_model(view)
        return (example[features.SOURCE], example[features.LABEL], example[features.CLASS_NAME], l_input, ab,
                view)

    dataset = tf.data.TFRecordDataset(files).map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(8)
    for index, (source, label, class_name, l_input, ab, rgb) in enumerate(dataset.as_numpy_iterator()):
        name = source.decode() or f"#{index}"
        class_text = class_name.decode() or (str(int(label)) if label >= 0 else None)
        yield name, class_text, l_input, ab, rgb


def _is_image_folder(data):
    path = pathlib.Path(data)
    return path.is_dir() and any(p.is_file() and images.is_image_path(p) for p in path.rglob("*"))


def iterate_examples(data, image_size, failures, labels=None):
    """Evaluation views of a folder of images or of TFRecord shards."""
    if _is_image_folder(data):
        return _folder_examples(data, image_size, failures, labels)
    return _shard_examples(_shard_files(data), image_size)


# ----------------------------------------------------------------------------
# Scoring
# ----------------------------------------------------------------------------


def hint_row_name(model_name, variant):
    """Row name of a guided model's hint row: ``variant`` is a point count or :data:`REFERENCE_ROW`."""
    if variant == 0:
        return model_name
    if isinstance(variant, int):
        return f"{model_name} + {variant} hint{'s' if variant != 1 else ''}"
    return f"{model_name} + {variant}"


def _predict(colorizer, l_batch, ab_true=None, variant=0, seed=None, max_points=0, rgb_true=None):
    """Model prediction at the evaluation size (resized in and out when the model is smaller/larger).

    ``variant``: 0 (automatic), a point count (hints drawn from ``ab_true``) or
    :data:`REFERENCE_ROW` (the reference histogram of ``rgb_true``).
    """
    size = l_batch.shape[1]
    model_size = colorizer.image_size
    small = l_batch if model_size == size else merge.downscale(l_batch, model_size).numpy()
    guidance = {}
    if variant == REFERENCE_ROW:
        guidance["reference"] = hint_ops.reference_histograms(rgb_true).numpy()
    elif variant:
        ab_lab = color.target_to_ab(ab_true if model_size == size else merge.downscale(ab_true, model_size))
        guidance["hints"] = hint_ops.sample_hints(ab_lab, variant, seed, max_points).numpy()
    ab = colorizer.predict_ab(small, **guidance)
    return ab if model_size == size else merge.upsample(ab, (size, size)).numpy()


def score_batch(l_batch, ab_true, rgb_true, ab_pred):
    """Per-image metric dict (NumPy) and the predicted uint8 RGB for one batch."""
    values = metrics.paper_metrics(l_batch, ab_true, ab_pred)
    rgb_pred = metrics.predicted_rgb(l_batch, ab_pred)
    values["psnr"] = metrics.psnr(rgb_true, rgb_pred)
    values["ssim"] = metrics.ssim(rgb_true, rgb_pred)
    values["colorfulness"] = metrics.colorfulness(rgb_pred)
    return {k: np.asarray(v, np.float64) for k, v in values.items()}, rgb_pred.numpy()


def _summarize(rows, names):
    """Averages of per-image rows (``rows[i][name][metric]``) for each model name."""
    out = {}
    true_cf = np.mean([r["colorfulness_true"] for r in rows])
    for name in names:
        mean = {k: float(np.mean([r[name][k] for r in rows])) for k in METRIC_KEYS}
        mean["colorfulness_true"] = float(true_cf)
        mean["colorfulness_ratio"] = float(mean["colorfulness"] / true_cf) if true_cf > 0 else float("nan")
        out[name] = mean
    return out


class _Reservoir:
    """Seeded reservoir sample of grid rows, or the chosen names."""

    def __init__(self, rows, chosen, seed):
        self.rows, self.chosen = rows, list(chosen)
        self.rng = np.random.default_rng(seed)
        self.items, self.seen = [], 0

    def offer(self, index, name, make_item):
        if self.chosen:
            if name in self.chosen or str(index) in self.chosen:
                self.items.append((self.chosen.index(name if name in self.chosen else str(index)), make_item()))
            return
        self.seen += 1
        if len(self.items) < self.rows:
            self.items.append((index, make_item()))
        else:
            j = self.rng.integers(0, self.seen)
            if j < self.rows:
                self.items[j] = (index, make_item())

    def result(self):
        return [item for _, item in sorted(self.items, key=lambda x: x[0])]


def evaluate(colorizers, data, image_size, *, batch_size=16, max_images=None, grid_rows=6, grid_images=(),
             seed=0, labels=None, progress=True, hint_points=HINT_POINTS, reference_row=True):
    """Scores each colorizer and the gray baseline on ``data``.

    Args:
      colorizers: ``{display name: keras_colorize.inference.api.Colorizer}``.
      data, image_size, ...: see :class:`EvalConfig`.

    Returns:
      ``(result dict, grid rows)``; grid rows are dicts of uint8 images.
    """
    names = [GRAY_BASELINE] + list(colorizers)
    # Hint rows of guided models: row name -> (model name, variant).
    variants = {}
    for model_name, colorizer in colorizers.items():
        if getattr(colorizer, "guided", False):
            extra = [n for n in hint_points if n] + ([REFERENCE_ROW] if reference_row else [])
            variants.update({hint_row_name(model_name, v): (model_name, v) for v in extra})
    max_points = max(hint_points, default=0)
    batch_index = [0]
    failures = []
    rows = []
    reservoir = _Reservoir(grid_rows, grid_images, seed)
    examples = iterate_examples(data, image_size, failures, labels)
    bar = tqdm(unit="img", disable=not progress, desc="evaluate", total=max_images)

    def flush(batch):
        l_batch = np.stack([b[2] for b in batch])
        ab_true = np.stack([b[3] for b in batch])
        rgb_true = np.stack([b[4] for b in batch])
        true_cf = metrics.colorfulness(rgb_true).numpy()
        per_model, rgb_preds = {}, {}
        for name in names:
            ab_pred = (metrics.gray_prediction(l_batch).numpy() if name == GRAY_BASELINE
                       else _predict(colorizers[name], l_batch))
            per_model[name], rgb_preds[name] = score_batch(l_batch, ab_true, rgb_true, ab_pred)
        hint_seed = tf.constant([seed, batch_index[0]], tf.int32)
        batch_index[0] += 1
        for row_name, (model_name, variant) in variants.items():
            ab_pred = _predict(colorizers[model_name], l_batch, ab_true, variant, hint_seed, max_points, rgb_true)
            per_model[row_name], _ = score_batch(l_batch, ab_true, rgb_true, ab_pred)
        for i, (example_name, label, *_rest) in enumerate(batch):
            row = {"name": example_name, "class": label, "colorfulness_true": float(true_cf[i])}
            for name in names + list(variants):
                row[name] = {k: float(per_model[name][k][i]) for k in METRIC_KEYS}
            index = len(rows)
            rows.append(row)
            reservoir.offer(index, example_name, lambda i=i: {
                "name": example_name,
                "input": color.float_to_uint8(color.l_to_gray_rgb(color.input_to_l(l_batch[i]))).numpy(),
                "truth": rgb_true[i],
                "predictions": {n: rgb_preds[n][i] for n in names},
            })
        bar.update(len(batch))

    for batch in batching.batched(itertools.islice(examples, max_images), batch_size):
        flush(batch)
    bar.close()
    if not rows:
        raise ValueError(f"data {data!r}: no image could be evaluated (failures: {failures[:5]})")

    by_class = collections.defaultdict(list)
    for row in rows:
        if row["class"] is not None:
            by_class[row["class"]].append(row)
    result = {
        "image_size": image_size,
        "num_images": len(rows),
        "models": {name: {"mean": mean} for name, mean in _summarize(rows, names).items()},
        "hint_rows": {name: dict(model=model_name, hints=variant if isinstance(variant, int) else 0,
                                 reference=variant == REFERENCE_ROW, mean=mean)
                      for (name, mean), (model_name, variant) in zip(_summarize(rows, list(variants)).items(),
                                                                     variants.values())},
        "per_class": {label: dict(_summarize(class_rows, names), count=len(class_rows))
                      for label, class_rows in sorted(by_class.items())},
        "per_image": rows,
        "failed": failures,
    }
    return result, reservoir.result()


# ----------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------

_COLUMNS = (("mae", "Average MAE", "{:.4f}"), ("mse_ab", "Average MSE (a*b*)", "{:.5f}"),
            ("mse_lab", "Average MSE (L*a*b*)", "{:.5f}"), ("psnr", "PSNR (dB)", "{:.2f}"),
            ("ssim", "SSIM", "{:.4f}"), ("colorfulness", "Colorfulness", "{:.1f}"),
            ("colorfulness_ratio", "Colorfulness ratio", "{:.3f}"))


def markdown_table(result, paths=None):
    """The paper-style table (one row per model) plus a per-class table when labels exist."""
    header = "| Model | " + " | ".join(title for _, title, _ in _COLUMNS) + " |"
    rule = "|---|" + "|".join("---:" for _ in _COLUMNS) + "|"
    lines = [f"Evaluation on {result['num_images']} images at {result['image_size']}x{result['image_size']} "
             f"(ground-truth colorfulness {next(iter(result['models'].values()))['mean']['colorfulness_true']:.1f}). "
             "MAE and MSE in normalized units (L/100, (ab+128)/255); lower is better. PSNR, SSIM on 8-bit sRGB; "
             "higher is better. Colorfulness ratio = mean predicted / mean ground-truth colorfulness (1 is ideal).",
             "", header, rule]
    for name, entry in result["models"].items():
        cells = [fmt.format(entry["mean"][key]) for key, _, fmt in _COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if result["per_class"]:
        model_names = list(result["models"])
        lines += ["", "Per class: Average MAE (colorfulness ratio)", "",
                  "| Class | Images | " + " | ".join(model_names) + " |",
                  "|---|---:|" + "|".join("---:" for _ in model_names) + "|"]
        for label, entry in result["per_class"].items():
            cells = [f"{entry[n]['mae']:.4f} ({entry[n]['colorfulness_ratio']:.2f})" for n in model_names]
            lines.append(f"| {label} | {entry['count']} | " + " | ".join(cells) + " |")
    if result.get("hint_rows"):
        lines += ["", "Guided models with hints drawn from the ground truth (points: N per image, the same for every "
                  "model; reference: the ground truth's own a*b* histogram)", "",
                  "| Model | Hint points | Reference | Average MAE | PSNR (dB) | Colorfulness ratio |",
                  "|---|---:|---|---:|---:|---:|"]
        for name, entry in hint_table_rows(result):
            mean = entry["mean"]
            lines.append(f"| {entry['model']} | {entry['hints']} | {'yes' if entry['reference'] else 'no'} | "
                         f"{mean['mae']:.4f} | {mean['psnr']:.2f} | {mean['colorfulness_ratio']:.3f} |")
    if paths:
        lines += ["", "Models: " + "; ".join(f"{name} = `{path}`" for name, path in paths)]
    return "\n".join(lines) + "\n"


def hint_table_rows(result):
    """``[(row name, {"model", "hints", "reference", "mean"})]``: each guided model's own row (0 points)
    followed by its hint rows, in order."""
    out = []
    for model_name in dict.fromkeys(entry["model"] for entry in result.get("hint_rows", {}).values()):
        out.append((model_name, dict(model=model_name, hints=0, reference=False,
                                     mean=result["models"][model_name]["mean"])))
        out += [(name, entry) for name, entry in result["hint_rows"].items() if entry["model"] == model_name]
    return out


def psnr_plot(result, width=640, height=400):
    """PSNR against the number of hint points, one line per guided model (Zhang et al. 2017, Fig. 6)."""
    series = {}
    for _, entry in hint_table_rows(result):
        if not entry["reference"]:
            series.setdefault(entry["model"], []).append((entry["hints"], entry["mean"]["psnr"]))
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(13)
    left, right, top, bottom = 60, 20, 30, 50
    xs = sorted({n for points in series.values() for n, _ in points})
    ys = [v for points in series.values() for _, v in points]
    gray = result["models"][GRAY_BASELINE]["mean"]["psnr"]
    lo, hi = np.floor(min(ys + [gray])) - 0.5, np.ceil(max(ys)) + 0.5

    def px(i, v):  # x by rank (0, 1, 2, 5, ... evenly spaced), y linear in dB
        x = left + (width - left - right) * (i / max(len(xs) - 1, 1))
        return x, top + (height - top - bottom) * (1 - (v - lo) / (hi - lo))

    draw.rectangle([left, top, width - right, height - bottom], outline="black")
    for tick in np.arange(np.ceil(lo), hi, 1.0 if hi - lo < 12 else 2.0):
        _, y = px(0, tick)
        draw.line([left - 4, y, left, y], fill="black")
        draw.text((left - 8, y), f"{tick:.0f}", fill="black", font=font, anchor="rm")
    for i, n in enumerate(xs):
        x, _ = px(i, lo)
        draw.text((x, height - bottom + 8), str(n), fill="black", font=font, anchor="mt")
    draw.text(((left + width - right) / 2, height - 14), "hint points per image", fill="black", font=font, anchor="mm")
    draw.text((8, top - 18), "PSNR (dB)", fill="black", font=font)
    _, gy = px(0, gray)
    draw.line([left, gy, width - right, gy], fill=(150, 150, 150))
    draw.text((width - right - 4, gy - 3), "gray", fill=(120, 120, 120), font=font, anchor="rb")
    palette = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]
    for k, (model_name, points) in enumerate(series.items()):
        colour = palette[k % len(palette)]
        coords = [px(xs.index(n), v) for n, v in sorted(points)]
        draw.line(coords, fill=colour, width=2)
        for x, y in coords:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        draw.text((left + 8, top + 8 + 16 * k), model_name, fill=colour, font=font)
    return canvas


def _font(size):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def comparison_grid(grid_rows, model_names, cell=192):
    """Figure-3/4-style grid: input, each model, ground truth; one row per image."""
    columns = ["Input"] + list(model_names) + ["Ground truth"]
    pad, header = 4, 28
    width = len(columns) * (cell + pad) + pad
    height = header + len(grid_rows) * (cell + pad) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(14)
    for c, title in enumerate(columns):
        x = pad + c * (cell + pad)
        text = title if len(title) <= 24 else title[:23] + "..."
        draw.text((x + cell / 2, header / 2), text, fill="black", font=font, anchor="mm")
    for r, row in enumerate(grid_rows):
        tiles = [row["input"]] + [row["predictions"][n] for n in model_names] + [row["truth"]]
        for c, tile in enumerate(tiles):
            image = Image.fromarray(np.asarray(tile, np.uint8)).resize((cell, cell), Image.LANCZOS)
            canvas.paste(image, (pad + c * (cell + pad), header + pad + r * (cell + pad)))
    return canvas


def run(config, *, progress=True):
    """Loads the models, evaluates, writes metrics.json / metrics.md / grid.png. Returns the result dict.

    The configuration, the data, the output folder's writability (created
    here) and every model's contract are checked before any image is read.

    Raises:
      ValueError: bad configuration.
    """
    config.validate()
    if not pathlib.Path(config.data).exists() and not tf.io.gfile.glob(config.data):
        raise ValueError(f"data {config.data!r} matches no files")
    fileio.check_writable_dir(config.output)
    from keras_colorize.inference.api import Colorizer  # noqa: PLC0415

    colorizers = {name: Colorizer.from_path(path, batch_size=config.batch_size) for name, path in config.models}
    image_size = config.image_size or max(c.image_size for c in colorizers.values())
    result, grid_rows = evaluate(colorizers, config.data, image_size, batch_size=config.batch_size,
                                 max_images=config.max_images, grid_rows=config.grid_rows,
                                 grid_images=config.grid_images, seed=config.seed, progress=progress,
                                 labels=read_labels(config.labels_csv, config.label_column) if config.labels_csv
                                 else None, hint_points=tuple(config.hint_points),
                                 reference_row=config.reference_row)
    result["config"] = dataclasses.asdict(config)
    for name, path in config.models:
        result["models"][name].update(path=str(path), input_size=colorizers[name].image_size)
    output = pathlib.Path(config.output)
    output.mkdir(parents=True, exist_ok=True)
    fileio.atomic_write_text(output / "metrics.json", json.dumps(result, indent=1))
    fileio.atomic_write_text(output / "metrics.md", markdown_table(result, config.models))
    if result["hint_rows"]:
        with fileio.atomic_path(output / "psnr_vs_hints.png") as tmp:
            psnr_plot(result).save(tmp, format="PNG")
    if grid_rows:
        grid = comparison_grid(grid_rows, list(result["models"]))
        with fileio.atomic_path(output / "grid.png") as tmp:
            grid.save(tmp, format="PNG")
    result["grid_names"] = [row["name"] for row in grid_rows]
    return result
