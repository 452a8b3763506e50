"""CPU speed settings for the TensorFlow backend, measured by ``benchmarks/run.py``.

What was measured on the 2-core AVX-512 machine this was built on (training
step, paper model, 256 px, batch 16, float32; see BUILD_NOTES.md, section
"Performance", for the numbers):

* **oneDNN** (``TF_ENABLE_ONEDNN_OPTS``, on by default on x86 Linux) halves
  the step time; :func:`configure_cpu` warns if it was turned off.
* **Fused batch normalization** saves about 11 % of the CPU time of a
  training step (0.262 vs 0.294 CPU s per image at 256 px). Keras 3's ``BatchNormalization`` computes the moments and
  the normalization as a dozen element-wise ops (forward and gradient);
  TensorFlow's ``FusedBatchNormV3`` does each direction in one oneDNN
  kernel. :func:`use_fused_batch_norm` swaps the TensorFlow op in under the
  same layer, same variables and same results (moving variance kept biased,
  as Keras does), so checkpoints, ``.keras`` files and exports are
  unchanged. Model code stays backend-agnostic: the swap is a runtime
  setting of the TensorFlow backend only.
* **XLA** (``jit_compile=True``) was slower: XLA's CPU convolutions do not
  use oneDNN (about 1.3x the CPU time per image). Keep ``jit_compile=False``
  on CPU.
* Thread pools: TensorFlow's defaults (intra = inter = number of cores) were
  as fast as any setting tried; nothing is changed.

Example:
  >>> from keras_colorize.training import perf
  >>> perf.configure_cpu()  # before building the model
  {'backend': 'tensorflow', 'onednn': True, 'fused_batch_norm': True, ...}
"""

import contextlib
import logging
import os

import keras

_ORIGINAL_CALL = keras.layers.BatchNormalization.call


def onednn_enabled():
    """True unless ``TF_ENABLE_ONEDNN_OPTS`` turns oneDNN off (TF's x86 Linux default is on)."""
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() not in ("0", "false", "off")


def _fused_call(self, inputs, training=None, mask=None):
    """``BatchNormalization.call`` on TensorFlow's FusedBatchNormV3 (same variables and semantics).

    Falls back to Keras's own implementation for what the fused op does not
    cover: masks, renorm, synchronized (multi-replica) statistics, no
    center/scale, normalization over a non-last axis, or ranks other than 2
    and 4.
    """
    import tensorflow as tf  # noqa: PLC0415 -- only reached with the TensorFlow backend

    rank = len(inputs.shape)
    if (mask is not None or self.renorm or getattr(self, "synchronized", False) or not (self.center and self.scale)
            or rank not in (2, 4) or self.axis not in (-1, rank - 1)):
        return _ORIGINAL_CALL(self, inputs, training=training, mask=mask)
    x = tf.cast(inputs, tf.float32)  # Keras also normalizes in float32 under mixed precision
    if rank == 2:
        x = tf.reshape(x, [-1, 1, 1, x.shape[-1]])
    gamma = tf.cast(self.gamma, tf.float32)
    beta = tf.cast(self.beta, tf.float32)
    if training and self.trainable:
        y, mean, unbiased_variance = tf.compat.v1.nn.fused_batch_norm(
            x, gamma, beta, epsilon=self.epsilon, is_training=True, exponential_avg_factor=1.0)
        # The op reports the Bessel-corrected variance; Keras keeps the biased one.
        count = tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float32)
        variance = unbiased_variance * (count - 1.0) / tf.maximum(count, 1.0)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
    else:
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            x, gamma, beta, mean=tf.cast(self.moving_mean, tf.float32),
            variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon, is_training=False)
    if rank == 2:
        y = tf.reshape(y, tf.shape(inputs))
    return tf.cast(y, self.compute_dtype)


def use_fused_batch_norm(enabled=True):
    """Makes every Keras ``BatchNormalization`` run on TensorFlow's fused kernel (process-wide).

    Has an effect only with the TensorFlow backend; returns whether the fused
    kernel is now in use. Applies to models built before or after the call.
    """
    enabled = bool(enabled) and keras.backend.backend() == "tensorflow"
    keras.layers.BatchNormalization.call = _fused_call if enabled else _ORIGINAL_CALL
    return enabled


@contextlib.contextmanager
def fused_batch_norm(enabled=True):
    """Context manager form of :func:`use_fused_batch_norm`; restores the previous state."""
    previous = keras.layers.BatchNormalization.call
    try:
        yield use_fused_batch_norm(enabled)
    finally:
        keras.layers.BatchNormalization.call = previous


def configure_cpu(fused_bn=True):
    """Applies the settings above; call once before building the model. Returns what is in effect.

    Args:
      fused_bn: run BatchNormalization on TensorFlow's fused kernel
        (:func:`use_fused_batch_norm`).
    """
    settings = {"backend": keras.backend.backend(), "onednn": onednn_enabled()}
    if settings["backend"] == "tensorflow" and not settings["onednn"]:
        logging.warning("TF_ENABLE_ONEDNN_OPTS=0: oneDNN is off; training on CPU runs about 2x slower "
                        "(BUILD_NOTES.md, Performance)")
    settings["fused_batch_norm"] = use_fused_batch_norm(fused_bn)
    settings["jit_compile_recommended"] = False
    return settings


#: CPU flags with native bfloat16 arithmetic (AVX-512 BF16, AMX); without them oneDNN emulates it.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bf16(cpuinfo=None):
    """True when the CPU computes bfloat16 natively; None when it cannot be told (no /proc/cpuinfo).

    Measured on 2026-12-04 on a 2-core AMD EPYC with AVX2 only: a training step of the Iizuka
    network at 128 px, batch 16, took 12.8 s under ``mixed_bfloat16`` against 2.1 s in float32,
    where the AVX-512 machine the CPU recipes were measured on ran ``mixed_bfloat16`` fastest.
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return None
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def check_precision(precision, cpuinfo=None):
    """A warning text when ``precision`` is bfloat16 on a CPU that only emulates it, else None."""
    if "bfloat16" not in precision or cpu_has_native_bf16(cpuinfo) is not False:
        return None
    return (f"--precision={precision} on a CPU without native bfloat16 ({' or '.join(BF16_CPU_FLAGS)}): "
            "oneDNN emulates it and training runs several times slower than float32; use --precision=float32 "
            "on this machine")

