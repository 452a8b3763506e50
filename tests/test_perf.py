"""keras_colorize.training.perf: the fused BatchNormalization must be the Keras layer, only faster.

Speed itself is measured by benchmarks/run.py, never here.
"""

import numpy as np
import pytest
import tensorflow as tf

import keras

from keras_colorize.training import perf
from keras_colorize.models import build_colorizer, get_preset


def _bn_pass(layer, x, upstream, fused):
    layer.moving_mean.assign(tf.zeros_like(layer.moving_mean))
    layer.moving_variance.assign(tf.ones_like(layer.moving_variance))
    with perf.fused_batch_norm(fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * upstream)
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        inference = layer(x, training=False)
    return [y, *grads, layer.moving_mean.numpy(), layer.moving_variance.numpy(), inference]


@pytest.mark.parametrize("shape", [(4, 6, 5, 8), (3, 16)])
def test_fused_batch_norm_matches_keras(shape):
    layer = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    layer.build(shape)
    layer.gamma.assign(tf.random.normal(shape[-1:], seed=2))
    layer.beta.assign(tf.random.normal(shape[-1:], seed=3))
    x = tf.random.normal(shape, seed=1) * 3.0 + 1.0
    upstream = tf.random.normal(shape, seed=4)
    stock = _bn_pass(layer, x, upstream, fused=False)
    fused = _bn_pass(layer, x, upstream, fused=True)
    names = ["output", "d_input", "d_gamma", "d_beta", "moving_mean", "moving_variance", "inference_output"]
    for name, a, b in zip(names, stock, fused):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5, err_msg=name)
    # The moving variance must be the biased one (what Keras keeps), not the op's Bessel-corrected one.
    batch_variance = np.var(x.numpy().reshape(-1, shape[-1]), axis=0)
    np.testing.assert_allclose(fused[5], 0.9 + 0.1 * batch_variance, rtol=1e-5)


def test_fused_batch_norm_is_reversible_and_model_level():
    keras.utils.set_random_seed(0)
    model = build_colorizer(get_preset("tiny"))
    x = tf.random.uniform((2, 64, 64, 1), seed=5)
    original = keras.layers.BatchNormalization.call
    expected = model(x, training=False)["ab"].numpy()
    with perf.fused_batch_norm() as enabled:
        assert enabled
        assert keras.layers.BatchNormalization.call is not original
        got = model(x, training=False)["ab"].numpy()
    assert keras.layers.BatchNormalization.call is original
    # float32 reordering of the BN arithmetic through a dozen layers: up to ~1.5e-5 on the sigmoid output.
    np.testing.assert_allclose(got, expected, atol=5e-5)


def test_configure_cpu_reports_settings(monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        settings = perf.configure_cpu()
        assert settings["onednn"] is False
        assert settings["fused_batch_norm"] is True
        assert settings["jit_compile_recommended"] is False
    finally:
        perf.use_fused_batch_norm(False)
    assert perf.configure_cpu(fused_bn=False)["fused_batch_norm"] is False


def test_bfloat16_on_a_cpu_that_only_emulates_it_is_named_in_a_warning():
    from keras_colorize.training import perf

    avx2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
    amx = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16\n"
    assert perf.cpu_has_native_bf16(avx2) is False and perf.cpu_has_native_bf16(amx) is True
    warning = perf.check_precision("mixed_bfloat16", avx2)
    assert "--precision=float32" in warning and "avx512_bf16" in warning
    assert perf.check_precision("mixed_bfloat16", amx) is None
    assert perf.check_precision("float32", avx2) is None
