"""Iizuka et al. 2016 preset: counts, strides, config validation, the loss default (MSE + CE / 300), the
"w/o global features" variant's counts. Output contract, training step, config round trip, save/load and
export of both variants: test_model_battery.py."""

import keras
import pytest

from keras_colorize import models
from keras_colorize.training import trainer

TINY = dict(image_size=64, num_classes=4, width=0.125)


def _iizuka_params(size=256, classes=137, width=1.0, fusion=True):
    """Trainable parameters of the network of the module docstring, counted by hand."""
    ch = lambda c: max(1, round(c * width))  # noqa: E731
    conv = lambda cin, cout: 9 * cin * cout + cout + 2 * cout  # conv with bias + BN  # noqa: E731
    dense = lambda nin, nout: nin * nout + nout + 2 * nout  # noqa: E731
    total, cin = 0, 1
    for c in (64, 128, 128, 256, 256, 512, 512, 256):  # low-level + mid-level
        total, cin = total + conv(cin, ch(c)), ch(c)
    if fusion:
        g = ch(512)
        total += 4 * conv(g, g) - conv(g, g) + conv(ch(512), g)  # the first reads the low-level 512
        total += dense((size // 32) ** 2 * g, ch(1024)) + dense(ch(1024), ch(512)) + dense(ch(512), ch(256))
        total += dense(ch(512), ch(256)) + ch(256) * classes + classes  # classification
        total += (ch(256) + ch(256)) * ch(256) + ch(256)  # fusion 1x1
    for c in (128, 64, 64, 32):
        total, cin = total + conv(cin, ch(c)), ch(c)
    return total + 9 * cin * 2 + 2


@pytest.fixture(scope="module")
def tiny():
    keras.utils.set_random_seed(0)
    return models.build_colorizer(models.get_preset("iizuka2016", **TINY))


@pytest.mark.slow
def test_paper_size_parameter_counts():
    model = models.build_colorizer(models.get_preset("iizuka2016"))
    counts = models.parameter_counts(model)
    assert counts["total"] == _iizuka_params() == 50_213_675
    # At the paper's 224 px and 205 Places classes; the first global FC is 7*7*512*1024 weights there.
    paper = models.build_colorizer(models.get_preset("iizuka2016", image_size=224, num_classes=205))
    assert models.parameter_counts(paper)["total"] == _iizuka_params(224, 205) == 42_366_831
    assert counts["global"] - models.parameter_counts(paper)["global"] == (64 - 49) * 512 * 1024


def test_tiny_counts_and_strides(tiny):
    counts = models.parameter_counts(tiny)
    assert counts["total"] == _iizuka_params(64, 4, 0.125) == 294_938
    assert set(counts) == {"low-level", "mid-level", "global", "classification", "fusion", "colorization",
                           "output", "guidance", "total"}
    assert counts["guidance"] == 0  # an automatic model: no hint layers, the pinned total unchanged
    # Strides: mid-level at 1/8, the global grid at 1/32, the sigmoid at 1/2 before the last upsampling.
    assert tiny.get_layer("mid2_relu").output.shape[1:3] == (8, 8)
    assert tiny.get_layer("global_flatten").input.shape[1:3] == (2, 2)
    assert tiny.get_layer("ab_sigmoid").output.shape[1:3] == (32, 32)


def test_without_global_features():
    model = models.build_colorizer(models.get_preset("iizuka2016", **dict(TINY, fusion=False)))
    assert list(model.output) == ["ab"]
    counts = models.parameter_counts(model)
    assert counts["global"] == counts["classification"] == counts["fusion"] == 0
    assert counts["total"] == _iizuka_params(64, 4, 0.125, fusion=False)


def test_config_validation_and_loss_default():
    # loss = MSE + CE / 300 (the paper's alpha); the battery checks the trainer's weighted sum of a step.
    config = trainer.TrainConfig(work_dir="w", demo_data_dir="d", model_preset="iizuka2016")
    assert config.class_loss_weight == pytest.approx(1 / 300) and config.ab_loss == "mse" and config.fusion
    assert sorted(models.colorizer_losses(config.model_config(), config.class_loss_weight)[1].items()) == [
        ("ab", 1.0), ("class", pytest.approx(1 / 300))]
    for field, value in (("image_size", 48), ("num_classes", 1), ("width", 0), ("fusion", "yes")):
        with pytest.raises(ValueError, match=field):
            models.get_preset("iizuka2016", **{field: value})
