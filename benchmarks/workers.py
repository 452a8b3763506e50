"""Benchmark workers: each runs in its own process (one framework, one model).

A worker is built by a *factory* (a module-level function, so that the
``spawn`` start method can find it by name) that returns a :class:`Runner`.
The parent (``bench_lib``) talks to it over a pipe:

    parent                          worker
    ------                          ------
    start(factory, **kwargs)  ->    runner = factory(**kwargs)   (build + warm-up)
                              <-    ("ready", runner.info)       or ("error", text)
    ("run", calls)            ->    time `calls` calls
                              <-    ("ok", [wall s, ...], peak_rss_bytes, cpu_seconds, load_average)
    ("stop",)                 ->    exit

One process per framework keeps TensorFlow's and PyTorch's thread pools from
competing, and lets ``ru_maxrss`` (peak resident memory) describe one
framework only. Workers sit idle while another one is timed, so A/B/A/B
interleaving compares the two under the same background load.

Heavy imports (TensorFlow, PyTorch, keras_colorize) happen inside the
factories, never at module import: the parent stays light.
"""

import dataclasses
import os
import resource
import sys
import time
import traceback

import numpy as np


@dataclasses.dataclass
class Runner:
    """A timed unit of work: `call()` processes `items` images once."""

    call: callable
    items: int
    info: dict = dataclasses.field(default_factory=dict)


def peak_rss_bytes():
    """Peak resident set size of this process so far.

    ``VmHWM`` of /proc/self/status belongs to this process image alone;
    ``ru_maxrss`` (the fallback off Linux) can carry a parent's peak across
    fork and exec. The parent here stays small, so both agree in practice.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def serve(conn, factory_name, kwargs, env):
    """Worker main loop (the target of the spawned process)."""
    os.environ.update(env)
    try:
        if ":" in factory_name:  # "module:function", for experiments outside this file
            import importlib

            module_name, function_name = factory_name.split(":")
            factory = getattr(importlib.import_module(module_name), function_name)
        else:
            factory = globals()[factory_name]
        runner = factory(**kwargs)
        runner.info.setdefault("items_per_call", runner.items)
        runner.info["rss_after_warmup_bytes"] = peak_rss_bytes()
        conn.send(("ready", runner.info))
    except BaseException:  # noqa: BLE001 -- any failure is reported, the row skips
        conn.send(("error", traceback.format_exc(limit=6)))
        return
    while True:
        message = conn.recv()
        if message[0] == "stop":
            return
        calls = int(message[1])
        seconds = []
        try:
            cpu_start = sum(os.times()[:2])
            for _ in range(calls):
                start = time.perf_counter()
                timed = runner.call()  # a call may time itself (returns seconds) to leave out a prelude
                seconds.append(timed if isinstance(timed, float) else time.perf_counter() - start)
            cpu_seconds = sum(os.times()[:2]) - cpu_start
        except BaseException:  # noqa: BLE001
            conn.send(("error", traceback.format_exc(limit=6)))
            return
        conn.send(("ok", seconds, peak_rss_bytes(), cpu_seconds, os.getloadavg()[0]))


def _warm(call, warmup):
    start = time.perf_counter()
    for _ in range(warmup):
        call()
    return time.perf_counter() - start


def _quiet_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _tf_perf_setup():
    """What keras_colorize.training.perf reports before anything is built (nothing is changed here)."""
    try:
        from keras_colorize.training import perf
    except ImportError:
        return {"perf": "keras_colorize.training.perf absent"}
    return {"onednn": perf.onednn_enabled()}


def _apply_keras_setup(setup):
    """After the package built the model: "package" leaves it, "tuned"/"stock" force perf on/off.

    Layers resolve ``call`` when the step is traced (first call), so switching
    here, after building and before warm-up, decides what is timed.
    """
    try:
        from keras_colorize.training import perf
    except ImportError:
        return {"keras_setup": setup, "fused_batch_norm": False}
    if setup == "tuned":
        perf.configure_cpu()
    elif setup == "stock":
        perf.use_fused_batch_norm(False)
    else:  # "package": what trainer.train() turns on for a default run
        from keras_colorize.training import trainer

        default = trainer.TrainConfig.__dataclass_fields__.get("fused_batch_norm")
        perf.use_fused_batch_norm(bool(default and default.default))
    import keras

    return {"keras_setup": setup,
            "fused_batch_norm": keras.layers.BatchNormalization.call is getattr(perf, "_fused_call", None)}


def _random_batch(batch, size, num_classes, seed=0):
    rng = np.random.default_rng(seed)
    lightness = rng.random((batch, size, size, 1), dtype=np.float32)
    ab = rng.random((batch, size, size, 2), dtype=np.float32)
    labels = rng.integers(0, num_classes, (batch,)).astype(np.int32)
    return lightness, ab, labels


# --------------------------------------------------------------------------
# Training step (rows 1 and 2)
# --------------------------------------------------------------------------


def tf_train(image_size, batch_size, warmup, class_weight=0.01, learning_rate=1e-4, setup="package"):
    """Keras/TF: the model built and compiled by the trainer (trainer.build_and_compile).

    `setup`: "package" measures what the trainer sets up; "tuned" / "stock"
    force keras_colorize.training.perf's CPU settings on / off (for A/B runs).
    """
    _quiet_tf()
    info = _tf_perf_setup()
    import tensorflow as tf

    model, num_classes, how = _trainer_model(image_size, class_weight, learning_rate)
    info.update(how)
    info.update(_apply_keras_setup(setup))
    lightness, ab, labels = (tf.constant(a) for a in _random_batch(batch_size, image_size, num_classes))
    targets = {"ab": ab, "class": labels}

    def call():
        model.train_on_batch(lightness, targets)

    info["warmup_seconds"] = _warm(call, warmup)
    info["parameters"] = int(sum(np.prod(v.shape) for v in model.trainable_weights))
    info["tf_version"] = tf.__version__
    return Runner(call, batch_size, info)


def _trainer_model(image_size, class_weight, learning_rate):
    """(compiled model, classes, description): the trainer's own path when it exists.

    ``trainer.build_and_compile`` with a default ``TrainConfig`` (paper
    preset, Adam, the trainer's jit/precision defaults), so that whatever the
    trainer sets up for speed is what is measured. Falls back to
    ``build_colorizer`` + ``model.compile`` without the trainer.
    """
    import keras
    import tensorflow as tf

    from keras_colorize.models import build_colorizer, get_preset, losses

    try:
        from keras_colorize.training import trainer

        config = trainer.TrainConfig(
            work_dir="unused", demo_data_dir="unused", model_preset="paper", image_size=image_size,
            class_loss_weight=class_weight, learning_rate=learning_rate, optimizer="adam")
        model, _ = trainer.build_and_compile(config, tf.distribute.get_strategy(), total_steps=10_000)
        return model, config.num_classes, {
            "compiled_by": "keras_colorize.training.trainer.build_and_compile",
            "jit_compile": config.jit_compile, "precision": config.precision,
            "steps_per_execution": config.steps_per_execution}
    except (ImportError, AttributeError) as error:
        reason = f"{type(error).__name__}: {error}"
    config = get_preset("paper", image_size=image_size)
    model = build_colorizer(config)
    loss, loss_weights = losses.colorizer_losses(config, class_weight=class_weight)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, loss_weights=loss_weights,
                  jit_compile=False)
    return model, config.num_classes, {"compiled_by": f"benchmarks fallback ({reason})", "jit_compile": False}


def torch_train(image_size, batch_size, warmup, channels_last=True, class_weight=0.01, learning_rate=1e-4):
    """PyTorch reference: the same network, loss and optimizer."""
    import torch

    import torch_reference

    model = torch_reference.build(image_size, channels_last=channels_last).train()
    step = torch_reference.make_train_step(model, class_weight, learning_rate)
    batch = torch_reference.random_batch(batch_size, image_size, channels_last=channels_last)

    def call():
        step(*batch)

    info = {
        "warmup_seconds": _warm(call, warmup),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "channels_last": channels_last,
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }
    return Runner(call, batch_size, info)


# --------------------------------------------------------------------------
# Inference (row 3)
# --------------------------------------------------------------------------


def tf_keras_infer(model_path, batch_size, warmup, setup="package"):
    """The Keras model (loaded from .keras) called in a tf.function, inference mode."""
    _quiet_tf()
    info = _tf_perf_setup()
    import keras
    import tensorflow as tf

    import keras_colorize.models  # noqa: F401 -- registers the custom objects

    model = keras.saving.load_model(model_path, compile=False)
    info.update(_apply_keras_setup(setup))
    size = int(model.inputs[0].shape[1])
    predict = tf.function(lambda x: model(x, training=False), jit_compile=False)
    lightness = tf.constant(_random_batch(batch_size, size, 2)[0])

    def call():
        predict(lightness)["ab"].numpy()

    info["warmup_seconds"] = _warm(call, warmup)
    return Runner(call, batch_size, info)


def tf_saved_model_infer(saved_model_dir, batch_size, warmup, signature="colorize_l"):
    """The exported SavedModel in a process that never imported keras_colorize."""
    _quiet_tf()
    import tensorflow as tf

    loaded = tf.saved_model.load(saved_model_dir)
    fn = loaded.signatures[signature]
    size = int(fn.structured_input_signature[1]["L"].shape[1])
    lightness = tf.constant(_random_batch(batch_size, size, 2)[0])

    def call():
        fn(L=lightness)["ab"].numpy()

    info = {"warmup_seconds": _warm(call, warmup), "signature": signature}
    return Runner(call, batch_size, info)


def litert_infer(tflite_path, batch_size, warmup, threads=2):
    """A .tflite file through LiteRT (ai_edge_litert), batch resized if needed."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=tflite_path, num_threads=threads)
    detail = interpreter.get_input_details()[0]
    shape = list(detail["shape"])
    per_invoke = batch_size
    if shape[0] != batch_size:
        try:
            interpreter.resize_tensor_input(detail["index"], [batch_size] + shape[1:])
            interpreter.allocate_tensors()
        except RuntimeError:  # the export fixes batch 1 (XNNPACK plans once): invoke it per image
            interpreter = Interpreter(model_path=tflite_path, num_threads=threads)
            per_invoke = int(shape[0])
    interpreter.allocate_tensors()
    lightness = _random_batch(per_invoke, int(shape[1]), 2)[0]
    outputs = interpreter.get_output_details()
    invokes = batch_size // per_invoke

    def call():
        for _ in range(invokes):
            interpreter.set_tensor(detail["index"], lightness)
            interpreter.invoke()
            for out in outputs:
                interpreter.get_tensor(out["index"])

    info = {
        "warmup_seconds": _warm(call, warmup),
        "images_per_invoke": per_invoke,
        "threads": threads,
        "file_bytes": os.path.getsize(tflite_path),
    }
    return Runner(call, batch_size, info)


def torch_infer(image_size, batch_size, warmup, channels_last=True):
    """PyTorch reference in eval mode under inference_mode."""
    import torch

    import torch_reference

    model = torch_reference.build(image_size, channels_last=channels_last).eval()
    lightness = torch_reference.random_batch(batch_size, image_size, channels_last=channels_last)[0]

    def call():
        with torch.inference_mode():
            model(lightness)

    info = {"warmup_seconds": _warm(call, warmup), "threads": torch.get_num_threads()}
    return Runner(call, batch_size, info)


# --------------------------------------------------------------------------
# Input pipeline (row 4)
# --------------------------------------------------------------------------


def tf_pipeline(file_pattern, image_size, batch_size, batches_per_call, full, skip_batches=12):
    """Training preprocessing (`full`) or bare tf.io.decode_jpeg of the same records.

    Both end in ``prefetch``, whose buffer refills while the other side is
    being timed; each call therefore first takes `skip_batches` batches
    untimed (more than the buffers hold) and times the next
    `batches_per_call`: the steady-state rate.
    """
    _quiet_tf()
    import tensorflow as tf

    from keras_colorize.data import features

    if full:
        from keras_colorize.data import pipeline

        ds = pipeline.make_dataset(file_pattern, "train", image_size, batch_size, seed=None, repeat=True)
    else:
        files = sorted(tf.io.gfile.glob(file_pattern))
        ds = tf.data.TFRecordDataset(files, num_parallel_reads=tf.data.AUTOTUNE).repeat()

        def decode(serialized):
            example = tf.io.parse_single_example(serialized, {features.IMAGE: tf.io.FixedLenFeature([], tf.string)})
            return tf.io.decode_jpeg(example[features.IMAGE], channels=3)

        ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    iterator = iter(ds)

    def call():
        for _ in range(skip_batches):
            next(iterator)
        start = time.perf_counter()
        for _ in range(batches_per_call):
            next(iterator)
        return time.perf_counter() - start

    info = {"warmup_seconds": _warm(call, 1), "full_preprocessing": full, "skipped_batches_per_call": skip_batches}
    return Runner(call, batch_size * batches_per_call, info)


# --------------------------------------------------------------------------
# End to end (row 5)
# --------------------------------------------------------------------------


def colorize_file(model_path, image_path, output_dir, warmup):
    """One JPEG file to one JPEG file: read, colorize at full resolution, write.

    Uses the public API (keras_colorize.inference.api.Colorizer, images.read_image
    and images.write_image), the path ``kc-colorize`` takes for one file.
    """
    _quiet_tf()
    info = _tf_perf_setup()
    from keras_colorize.inference import images
    from keras_colorize.inference import api

    colorizer = api.Colorizer.from_path(model_path)
    output = os.path.join(output_dir, "colorized.jpg")

    def call():
        picture = images.read_image(image_path)
        (rgb, _), = colorizer.colorize_pictures([picture])
        images.write_image(output, rgb, image_format="JPEG", quality=95)

    info["warmup_seconds"] = _warm(call, warmup)
    return Runner(call, 1, info)


# --------------------------------------------------------------------------
# Inputs and artefacts (run once in a worker so the parent stays light)
# --------------------------------------------------------------------------

SHARED_LANDSCAPES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.pardir,
                                 "shared", "data", "landscapes")


def _source_images(count, size, seed=0):
    """RGB uint8 photos: the shared landscapes when present, else smooth random scenes."""
    from PIL import Image

    files = sorted(f for f in os.listdir(SHARED_LANDSCAPES) if f.lower().endswith((".jpg", ".jpeg"))) \
        if os.path.isdir(SHARED_LANDSCAPES) else []
    rng = np.random.default_rng(seed)
    for i in range(count):
        if files:
            with Image.open(os.path.join(SHARED_LANDSCAPES, files[i % len(files)])) as image:
                image = image.convert("RGB")
                if i >= len(files):
                    image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                yield image.resize((size, size), Image.Resampling.LANCZOS), "shared landscapes"
        else:
            small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            image = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
            yield image, "synthetic (../shared/data absent)"


def write_shards(out_dir, count, size=256, num_shards=4):
    """`count` size x size JPEGs in TFRecord shards written with keras_colorize.data.features."""
    import io as _io

    _quiet_tf()
    import tensorflow as tf

    from keras_colorize.data import features

    os.makedirs(out_dir, exist_ok=True)
    writers = [tf.io.TFRecordWriter(os.path.join(out_dir, f"bench-{i:02d}.tfrecord")) for i in range(num_shards)]
    source = ""
    for i, (image, source) in enumerate(_source_images(count, size)):
        buffer = _io.BytesIO()
        image.save(buffer, "JPEG", quality=95)
        example = features.make_example(buffer.getvalue(), size, size, label=i % 137, class_name="bench")
        writers[i % num_shards].write(example.SerializeToString())
    for writer in writers:
        writer.close()
    info = {"pattern": os.path.join(out_dir, "bench-*.tfrecord"), "count": count, "source": source}
    return Runner(lambda: None, 0, info)


def export_artifacts(out_dir, image_size, seed=0):
    """Random-init paper model saved as .keras, exported SavedModel and TFLite variants."""
    _quiet_tf()
    import keras

    from keras_colorize.models import build_colorizer, get_preset

    os.makedirs(out_dir, exist_ok=True)
    keras.utils.set_random_seed(seed)
    model = build_colorizer(get_preset("paper", image_size=image_size))
    info = {"errors": []}
    info["keras_path"] = os.path.join(out_dir, "colorizer.keras")
    model.save(info["keras_path"])
    try:
        from keras_colorize.export import saved_model

        info["saved_model_dir"] = str(saved_model.export_saved_model(model, os.path.join(out_dir, "saved_model"), 1,
                                                                     overwrite=True))
    except Exception as error:  # noqa: BLE001 -- reported as the rows' skip reason
        info["errors"].append(f"SavedModel: {type(error).__name__}: {error}")
    try:
        info["tflite"] = _export_tflite(model, os.path.join(out_dir, "tflite"))
    except Exception as error:  # noqa: BLE001
        info["errors"].append(f"TFLite: {type(error).__name__}: {error}")
    return Runner(lambda: None, 0, info)


def _export_tflite(model, out_dir, calibration_steps=8):
    """{variant: path} through keras_colorize.export.tflite.convert_variants."""
    from keras_colorize.export import tflite

    size = int(model.inputs[0].shape[1])

    def calibration():  # speed does not depend on what the ranges were calibrated on
        rng = np.random.default_rng(0)
        for _ in range(calibration_steps):
            yield {"L": rng.random((1, size, size, 1), dtype=np.float32)}

    converted = tflite.convert_variants(model, out_dir, variants=tflite.VARIANTS, calibration=calibration,
                                        overwrite=True)
    return {variant: str(path) for variant, path in converted.paths.items()}


def e2e_inputs(out_dir, megapixels, seed=0):
    """A random-init paper model (.keras) and a gray-looking JPEG of `megapixels` (4:3)."""
    _quiet_tf()
    import keras
    from PIL import Image

    from keras_colorize.models import build_colorizer, get_preset

    os.makedirs(out_dir, exist_ok=True)
    keras.utils.set_random_seed(seed)
    keras_path = os.path.join(out_dir, "colorizer.keras")
    build_colorizer(get_preset("paper")).save(keras_path)
    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    height = int(round(width * 3 / 4))
    image, _ = next(_source_images(1, 512, seed))
    image = image.resize((width, height), Image.Resampling.BICUBIC)
    image_path = os.path.join(out_dir, "photo.jpg")
    image.save(image_path, "JPEG", quality=92)
    info = {"keras_path": keras_path, "image_path": image_path, "image_shape": [height, width]}
    return Runner(lambda: None, 0, info)


if __name__ == "__main__":
    sys.exit("workers.py is started by benchmarks/run.py")
