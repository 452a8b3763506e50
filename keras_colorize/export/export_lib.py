"""What the exporters do, as library functions over plain configs (the CLIs in ``export/`` only parse flags).

:func:`export_saved_model` loads a trained ``.keras`` model and writes the TF
Serving SavedModel; :func:`export_tflite` converts it to the TFLite variants,
then measures and writes the report.

Without a trained model (``model_path=""``) a preset is built with its
initial weights and, when photos or shards are given, BatchNormalization
statistics re-estimated on them (:mod:`keras_colorize.export.bn_statistics`);
the report's ``notes`` say so. This is for trying the pipeline and measuring
speed and quantization error; the colours of such a model mean nothing.
"""

import dataclasses
import pathlib
from typing import Optional, Sequence

import numpy as np

from keras_colorize.export import saved_model as saved_model_lib
from keras_colorize.export import settings
from keras_colorize.export import tflite as tflite_lib


def load_model(model_path="", preset="paper"):
    """``(model, description)``: a bundled model name or ``.keras`` file, or the preset's untrained network.

    ``model_path`` may be a bundled model name (``"scenes"``,
    :mod:`keras_colorize.pretrained`), looked up before any file of that name.
    """
    import keras  # noqa: PLC0415

    import keras_colorize.models as models  # noqa: PLC0415 - registers the custom layers
    from keras_colorize import pretrained  # noqa: PLC0415

    if model_path:
        bundled = pretrained.is_name(model_path)
        from keras_colorize.inference import api  # noqa: PLC0415

        model, path = api.load_keras_model(model_path, with_path=True)  # checked spec, file and contract
        return model, (f"bundled model {model_path!r} ({path})" if bundled else f"trained model {path}")
    if preset not in models.preset_names():
        raise ValueError(f"preset must be one of {models.preset_names()}, got {preset!r}")
    keras.utils.set_random_seed(0)
    return models.build_colorizer(models.get_preset(preset)), f"untrained '{preset}' preset (initial weights, seed 0)"


def read_class_names(path):
    """Class names from a class-list file (``experiments/landscape_classes.txt``), or None for ''."""
    if not path:
        return None
    from keras_colorize.data import places365  # noqa: PLC0415

    try:
        return tuple(places365.read_class_list(path))
    except ValueError as e:
        raise ValueError(f"class_names={str(path)!r}: {e}") from None


@dataclasses.dataclass(frozen=True)
class SavedModelExportConfig:
    """Arguments of :func:`export_saved_model` (one field per CLI flag)."""

    output: str  # <base>/<model_name>
    version: int
    model_path: str = ""
    preset: str = "paper"
    overwrite: bool = False
    output_format: str = "jpeg"
    jpeg_quality: int = 95
    max_pixels: int = saved_model_lib.ServingConfig.max_pixels
    class_names_file: str = ""
    warmup: bool = True  # TF Serving's warm-up request (needs the [serving] extra)


def export_saved_model(config, model=None):
    """Writes ``<output>/<version>/``; returns its path. ``model`` overrides model_path/preset.

    Arguments are checked (version, existing folder, format, class list) before the model is loaded.
    """
    from keras_colorize import pretrained  # noqa: PLC0415

    if not config.output:
        raise ValueError("output is required (the model's base folder, <base>/<model_name>)")
    saved_model_lib.remove_stale_staging(config.output)  # debris of killed exports (dead pids only)
    saved_model_lib.check_target(config.output, config.version, config.overwrite)
    class_names_file = config.class_names_file
    if not class_names_file and model is None and pretrained.is_name(config.model_path):
        class_names_file = str(pretrained.classes_path(config.model_path))  # a bundled model brings its classes
    serving = saved_model_lib.ServingConfig(
        output_format=config.output_format,
        jpeg_quality=config.jpeg_quality,
        max_pixels=config.max_pixels,
        class_names=read_class_names(class_names_file),
    )
    serving.validate(num_classes=len(serving.class_names) if serving.class_names else None)
    if model is None:
        model, _ = load_model(config.model_path, config.preset)
    return saved_model_lib.export_saved_model(model, config.output, config.version, serving, config.overwrite,
                                              warmup=config.warmup)


@dataclasses.dataclass(frozen=True)
class TfliteExportConfig:
    """Arguments of :func:`export_tflite` (one field per CLI flag)."""

    output_dir: str
    model_path: str = ""
    preset: str = "paper"
    variants: Sequence[str] = settings.VARIANTS
    calibration_shards: str = ""  # glob of TFRecord shards; this or calibration_photos is required for int8/int16x8
    calibration_photos: str = ""  # a folder of real colour photos, the alternative to calibration_shards
    calibration_steps: int = settings.DEFAULT_CALIBRATION_STEPS
    clip_percentile: Optional[float] = settings.DEFAULT_CLIP_PERCENTILE  # int8 activation ranges; None = min/max
    photos_dir: str = ""  # real photos for the report's quality columns; no report without
    num_photos: int = 32
    report: str = ""  # JSON path; default <output_dir>/report.json
    num_threads: int = 2
    timed_runs: int = 30
    overwrite: bool = False
    name: str = "colorizer"


@dataclasses.dataclass
class TfliteExport:
    paths: dict
    folded_pairs: list
    report: Optional[dict]
    report_path: Optional[pathlib.Path]


def export_tflite(config, model=None, progress=print):
    """Converts every variant, then (with photos) measures and writes the report.

    Arguments are checked before any conversion starts.
    """
    variants = settings.check_variants(config.variants)
    calibrated = [v for v in variants if v in settings.CALIBRATED_VARIANTS]
    if calibrated and not (config.calibration_shards or config.calibration_photos):
        raise ValueError(f"variants include {calibrated}: calibration_shards (a glob of TFRecord shards) or "
                         "calibration_photos (a folder of real colour photos) is required")
    if config.calibration_shards and config.calibration_photos:
        raise ValueError("give calibration_shards or calibration_photos, not both")
    if config.calibration_photos and not pathlib.Path(config.calibration_photos).is_dir():
        raise ValueError(f"calibration_photos={config.calibration_photos!r} is not an existing folder")
    if config.num_photos < 1:
        raise ValueError(f"num_photos must be >= 1, got {config.num_photos!r}")
    from keras_colorize.export import tflite_report  # noqa: PLC0415

    photos = tflite_report.list_photos(config.photos_dir, config.num_photos) if config.photos_dir else None
    existing = [str(p) for v in variants if (p := tflite_lib.variant_path(config.output_dir, v, config.name)).exists()]
    if existing and not config.overwrite:
        raise FileExistsError(f"{existing} already exist; pass --overwrite to replace them")
    description = "the given Keras model"
    if model is None:
        model, description = load_model(config.model_path, config.preset)
    image_size, _ = saved_model_lib.model_geometry(model)
    guided = saved_model_lib.is_guided(model)  # calibration then simulates hints from the photos' ground truth
    calibration = None
    if config.calibration_shards:
        calibration = tflite_lib.calibration_dataset(config.calibration_shards, image_size, config.calibration_steps,
                                                     guided=guided)
    elif config.calibration_photos:
        calibration_files = tflite_report.list_photos(config.calibration_photos, config.calibration_steps)
        l_calibration, ab_calibration = tflite_report.load_photos(calibration_files, image_size)
        calibration = tflite_lib.photo_calibration(l_calibration, ab_calibration if guided else None)
    l_photos = ab_photos = None
    if photos:
        l_photos, ab_photos = tflite_report.load_photos(photos, image_size)
    if not config.model_path and model is not None and description.startswith("untrained"):
        description += _quick_init(model, l_photos, calibration, progress)

    converted = tflite_lib.convert_variants(
        model, config.output_dir, variants, calibration, config.name, config.overwrite, progress,
        clip_percentile=config.clip_percentile)
    report = report_path = None
    if photos:
        report = tflite_report.build_report(
            model, converted.paths, l_photos, ab_photos, num_threads=config.num_threads, runs=config.timed_runs,
            notes=f"Weights: {description}. Folded {len(converted.folded_pairs)} BatchNormalization layers.")
        report["files"] = {v: str(p) for v, p in converted.paths.items()}
        report["config"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}
        report_path = tflite_report.write_report(report, config.report or pathlib.Path(config.output_dir) / "report.json")
        progress(tflite_report.format_table(report))
        progress(f"report written to {report_path}")
    return TfliteExport(converted.paths, converted.folded_pairs, report, report_path)


def _quick_init(model, l_photos, calibration, progress):
    from keras_colorize.export import bn_statistics  # noqa: PLC0415

    if calibration is not None:
        batch = np.concatenate([x["L"] for _, x in zip(range(16), calibration())])
        source = "calibration shards"
    elif l_photos is not None:
        batch = l_photos[-16:]
        source = "the report photos"
    else:
        return "; BatchNormalization statistics not re-estimated (no data given)"
    count = bn_statistics.reestimate_batch_norm(model, batch)
    progress(f"untrained model: re-estimated {count} BatchNormalization layers' statistics on {len(batch)} images")
    return f"; BatchNormalization statistics re-estimated on {len(batch)} images of {source}"
