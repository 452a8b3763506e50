r"""Turns a trained run's model into the package's bundled model.

    kc-release-model --model=runs/scenes_cpu_iizuka2016/best.keras \
      --output=keras_colorize/pretrained/scenes.keras      # or python -m keras_colorize.tools.release_model

The trainer saves ``best.keras`` under its training dtype policy (for the CPU
recipe ``mixed_bfloat16``). A released model is for inference on any machine,
so it is rebuilt from the same architecture config under ``float32``, the
weights are copied over, and the two are compared on the same inputs before the
file is written (atomically). Refuses files over ``--max_mb`` (the package
keeps one model and stays small).

Exit status: 0 written; 2 bad arguments or model (a missing flag, a missing
file or one without its architecture config, a rebuild that differs beyond
``--tolerance``, a file over ``--max_mb``: nothing is written), as one line
``kc-release-model: error: ...``.
"""

import os

from absl import flags

from keras_colorize import cli


def _define_flags():
    """Defines the command's flags (only when run as a command, so importing the library
    functions never clashes with another command's flags in the same process)."""
    flags.DEFINE_string("model", None, "Trained .keras file (e.g. runs/scenes_cpu_iizuka2016/best.keras).")
    flags.DEFINE_string("output", None, "Where to write the float32 .keras file.")
    flags.DEFINE_float("max_mb", 50.0, "Largest file allowed, in MB (10^6 bytes).")
    flags.DEFINE_float(
        "tolerance", 0.02, "Largest mean |a*b*| difference (model units) allowed between the trained and released model "
        "(bfloat16 training compute against float32 inference).")


def _model_config(trained, model_path):
    """The architecture config: the model's own, else the training run's ``config.json`` beside the file.

    The trainer saves a functional clone of its model (``checkpoints.save_model_atomic``), which keeps the
    weights and graph but not the ``ModelConfig``; the run's ``config.json`` holds the flags that built it.
    """
    import dataclasses  # noqa: PLC0415
    import json  # noqa: PLC0415

    from keras_colorize.training import trainer  # noqa: PLC0415

    if getattr(trained, "config", None) is not None:
        return trained.config
    run_config = os.path.join(os.path.dirname(os.path.abspath(model_path)), "config.json")
    if not os.path.isfile(run_config):
        raise ValueError(f"model={model_path!r} carries no architecture config and there is no {run_config} "
                         "(the training run's config) beside it")
    with open(run_config) as f:
        values = json.load(f)
    names = {f.name for f in dataclasses.fields(trainer.TrainConfig)}
    return trainer.TrainConfig(**{k: v for k, v in values.items() if k in names}).model_config()


def release(model_path, output, max_mb=50.0, tolerance=0.02):
    """Rebuilds ``model_path`` in float32, checks it, writes ``output``; returns a dict of figures."""
    import keras  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from keras_colorize import models  # noqa: PLC0415

    if not os.path.isfile(model_path):
        raise ValueError(f"model={model_path!r} is not an existing file")
    trained = keras.saving.load_model(model_path, compile=False)
    config = _model_config(trained, model_path)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        released = models.build_colorizer(config)
    finally:
        keras.config.set_dtype_policy(previous)
    released.set_weights([np.asarray(w, np.float32) for w in trained.get_weights()])
    size = config.image_size
    rng = np.random.default_rng(0)
    inputs = rng.uniform(0.0, 1.0, (2, size, size, 1)).astype(np.float32)
    if getattr(config, "hints", False):  # a guided model: exercise its guidance layers too
        from keras_colorize.guidance import spec  # noqa: PLC0415

        inputs = {"L": inputs,
                  "hints": rng.uniform(0.0, 1.0, (2, size, size, spec.HINT_CHANNELS)).astype(np.float32),
                  "reference": rng.uniform(0.0, 1.0, (2, spec.REFERENCE_SIZE)).astype(np.float32)}
    a = np.asarray(trained(inputs, training=False)["ab"], np.float32)
    b = np.asarray(released(inputs, training=False)["ab"], np.float32)
    diff = float(np.mean(np.abs(a - b)))
    if not diff <= tolerance:
        raise ValueError(f"the float32 rebuild differs from {model_path} by {diff:.4f} mean |a*b*| "
                         f"(tolerance {tolerance})")
    from keras_colorize import fileio  # noqa: PLC0415

    with fileio.atomic_path(output, keep_suffix=True) as tmp:  # Keras picks the format from the suffix
        released.save(tmp)
        _deflate(tmp)
        mb = os.path.getsize(tmp) / 1e6
        if mb > max_mb:
            raise ValueError(f"released model is {mb:.1f} MB, over max_mb={max_mb}")
    return {"output": output, "mb": mb, "mean_abs_diff": diff, "params": released.count_params(),
            "policy": _training_policy(trained)}


def _deflate(path):
    """Re-packs a ``.keras`` zip with DEFLATE (Keras stores it uncompressed): float32 weights shrink by about 8 %,
    which keeps two bundled models under the package's 50 MB; Keras reads either."""
    import zipfile  # noqa: PLC0415

    packed = f"{path}.deflate"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
        for info in source.infolist():
            out.writestr(info.filename, source.read(info.filename))
    os.replace(packed, path)


def _training_policy(model):
    """The dtype policy the trained layers computed in (a Model's own policy stays ``float32`` when its
    layers were built under ``mixed_bfloat16``; the layers keep theirs in the saved file)."""
    names = {layer.dtype_policy.name for layer in model.layers if hasattr(layer, "dtype_policy")}
    mixed = sorted(name for name in names if name.startswith("mixed"))
    return mixed[0] if mixed else model.dtype_policy.name


def main(argv):
    cli.check_args(argv, required=("model", "output"))
    flag_values = flags.FLAGS
    figures = release(flag_values.model, flag_values.output, flag_values.max_mb,
                      flag_values.tolerance)  # ValueError: cli.run exits 2
    print(f"wrote {figures['output']}: {figures['mb']:.1f} MB, {figures['params']:,} parameters, float32 "
          f"(trained under {figures['policy']}; mean |a*b*| difference {figures['mean_abs_diff']:.2e})")
    return 0


def run():
    """Console-script entry point (``kc-release-model``); exit status 0 or 2 as above."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _define_flags()
    cli.run(main, "kc-release-model")


if __name__ == "__main__":
    run()
