r"""Estimates the a*b* prior of training shards, for Zhang et al.'s class rebalancing.

    kc-ab-prior --train_data='data/shards/train-*-of-*.tfrecord' --output=runs/prior.npy
    python -m keras_colorize.train --model_preset=zhang2016 --ab_prior=runs/prior.npy ...

(``kc-ab-prior`` is ``python -m keras_colorize.tools.ab_prior``.)

Every image is read once as the validation pipeline sees it (short side
resized to ``--image_size``, centre crop), and every pixel's a*b* is counted
in its nearest in-gamut bin (:mod:`keras_colorize.models.ab_bins`). The output
is the (Q,) float64 empirical distribution (sums to 1), not smoothed: the
trainer smooths it (Gaussian, sigma 5) and mixes it with the uniform
distribution when it computes the rebalancing weights.

Refuses to overwrite an existing ``--output`` unless ``--overwrite``. Exit
status: 0 written, 2 bad arguments or unreadable shards (nothing written), as
one line ``kc-ab-prior: error: ...``.
"""

import os
import sys

from absl import flags

from keras_colorize import cli

FLAGS = flags.FLAGS


def _define_flags():
    """Defines the command's flags (only when run as a command: the library functions are imported by
    tests and the trainer, whose processes define ``--train_data`` themselves)."""
    flags.DEFINE_string("train_data", None, "Glob of the training TFRecord shards (from make_shards).")
    flags.DEFINE_string("output", None, "Where to write the prior, a .npy file.")
    flags.DEFINE_integer("image_size", 256, "Side of the centre crops the pixels are counted on.")
    flags.DEFINE_integer("batch_size", 32, "Images per batch while counting.")
    flags.DEFINE_integer("max_images", 0, "Count at most this many images (0 = all).")
    flags.DEFINE_bool("overwrite", False, "Replace an existing --output.")


def estimate_prior(train_data, image_size=256, batch_size=32, max_images=0):
    """The empirical a*b* bin distribution of the shards matching ``train_data``.

    Returns:
      (prior, stats): prior (Q,) float64 summing to 1; stats
      {"images", "pixels", "bins_hit", "files"}.

    Raises:
      ValueError: bad arguments, no matching shards, unreadable records or no pixels.
    """
    import numpy as np  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    from keras_colorize.data import pipeline  # noqa: PLC0415
    from keras_colorize.models import ab_bins  # noqa: PLC0415

    for name, value, low in (("image_size", image_size, 8), ("batch_size", batch_size, 1), ("max_images", max_images, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {name}={value!r}")
    try:
        files = pipeline.list_files(train_data)
    except ValueError:
        raise ValueError(f"train_data={train_data!r} matches no files") from None
    lut, lo = ab_bins.candidate_lut()
    lut = tf.constant(lut, tf.int32)
    centers = tf.constant(ab_bins.bin_centers(), tf.float32)

    def count(l_input, targets):
        ab = targets["ab"] * 255.0 - 128.0
        cell = tf.clip_by_value(tf.cast(tf.round(ab / ab_bins.GRID), tf.int32) - lo, 0, lut.shape[0] - 1)
        candidates = tf.gather_nd(lut, cell)  # (B, H, W, K): the exact nearest bin is one of them
        d2 = tf.reduce_sum(tf.square(ab[..., None, :] - tf.gather(centers, candidates)), -1)
        idx = tf.gather(candidates, tf.argmin(d2, -1, output_type=tf.int32), batch_dims=3)
        return tf.shape(l_input)[0], tf.math.bincount(tf.reshape(idx, [-1]), minlength=ab_bins.NUM_BINS,
                                                      maxlength=ab_bins.NUM_BINS, dtype=tf.int64)

    ds = pipeline.make_dataset(files, "val", image_size, batch_size, with_class=False)
    if max_images:
        ds = ds.unbatch().take(max_images).batch(batch_size)
    counts, images = np.zeros(ab_bins.NUM_BINS, np.int64), 0
    try:
        for n, batch_counts in ds.map(count):
            images += int(n)
            counts += batch_counts.numpy()
    except tf.errors.OpError as e:
        raise ValueError(f"train_data={train_data!r}: cannot read the shards ({e.message.splitlines()[0]})") from None
    if not counts.sum():
        raise ValueError(f"train_data={train_data!r}: the shards hold no images")
    stats = {"images": images, "pixels": int(counts.sum()), "bins_hit": int((counts > 0).sum()), "files": len(files)}
    return counts / counts.sum(), stats


def write_prior(prior, output, overwrite=False):
    """Writes ``prior`` as .npy to ``output`` atomically (ValueError if it exists and not ``overwrite``)."""
    import io  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    from keras_colorize import fileio  # noqa: PLC0415

    if not str(output).endswith(".npy"):
        raise ValueError(f"output must end in .npy, got output={output!r}")
    if os.path.exists(output) and not overwrite:
        raise ValueError(f"output={output!r} exists; pass --overwrite to replace it")
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(prior, np.float64), allow_pickle=False)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fileio.atomic_write_bytes(output, buffer.getvalue())


def main(argv):
    cli.check_args(argv, required=("train_data", "output"))
    output = FLAGS.output
    if not output.endswith(".npy"):
        raise ValueError(f"output must end in .npy, got output={output!r}")
    if os.path.exists(output) and not FLAGS.overwrite:
        raise ValueError(f"output={output!r} exists; pass --overwrite to replace it")
    prior, stats = estimate_prior(FLAGS.train_data, FLAGS.image_size, FLAGS.batch_size, FLAGS.max_images)
    write_prior(prior, output, overwrite=FLAGS.overwrite)
    print(f"{output}: a*b* prior of {stats['images']} images ({stats['pixels']} pixels, {stats['files']} shards); "
          f"{stats['bins_hit']} of {len(prior)} bins hit", file=sys.stdout, flush=True)
    return 0


def run():
    """Console-script entry point (``kc-ab-prior``); exit status 0 or 2 as above."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _define_flags()
    cli.run(main, "kc-ab-prior")


if __name__ == "__main__":
    run()
