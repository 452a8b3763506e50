"""The colorizer: Table 1 counts, config validation, encoder contract and the two-head loss.

Output contract, dtype policies, training step, config round trip, saving and
export of every model variant: test_model_battery.py."""

import dataclasses

import keras
import numpy as np
import pytest

from keras_colorize import models
from keras_colorize.models import (
    FEATURE_KEYS,
    ModelConfig,
    block_parameter_counts,
    build_colorizer,
    build_encoder,
    colorizer_losses,
    feature_spec,
    get_preset,
)

# The paper's Table 1 (C = 137, 256 px) with our Up 1 (see BUILD_NOTES.md).
TABLE1 = {
    "Input Block": 9_536, "Input Pool": 0, "Down 1": 221_952,
    "Down 2": 1_116_416, "Down 3": 6_822_400, "Down 4": 13_114_368,
    "Bridge": 4_721_664, "Global": 34_215_168, "Classification": 167_323,
    "Up 1": 2_230_272, "Up 2": 574_336, "Up 3": 143_808, "Up 4": 45_280,
    "Up 5": 7_200, "Conv Out": 38, "total": 63_389_761,
}


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.fixture(scope="module")
def tiny():
    return build_colorizer(get_preset("tiny"))


def _batch(config, batch=2, labels=None, seed=0):
    rng = np.random.default_rng(seed)
    size = config.image_size
    l_in = rng.random((batch, size, size, 1), dtype=np.float32)
    ab = rng.random((batch, size, size, 2), dtype=np.float32)
    if labels is None:
        labels = rng.integers(0, config.num_classes, batch)
    return l_in, {"ab": ab, "class": np.asarray(labels, np.int32)}


# --- Table 1 ---------------------------------------------------------------

@pytest.mark.slow
def test_paper_table1_counts_and_other_sizes():
    model = build_colorizer(get_preset("paper"))
    counts = block_parameter_counts(model)
    assert counts == TABLE1
    assert _trainable(model) == TABLE1["total"]
    assert tuple(model.input.shape) == (None, 256, 256, 1)
    assert model.output["class"].shape[-1] == 137
    del model
    # Without fusion: no global branch, class head or fusion conv; Up 1's
    # transposed conv maps 512 -> 256.
    plain = build_colorizer(get_preset("paper", fusion=False))
    assert _trainable(plain) == 29_072_550
    assert block_parameter_counts(plain)["Up 1"] == 2_230_272 - 196_864 + 262_144
    assert list(plain.output) == ["ab"]
    del plain
    # Another size: only the global branch's first Dense changes, by
    # ((H/32)^2 - 64) * 512 * 1024 weights.
    small = build_colorizer(get_preset("paper", image_size=224))
    assert block_parameter_counts(small)["total"] == 55_525_441
    assert TABLE1["total"] + (7 * 7 - 8 * 8) * 512 * 1024 == 55_525_441


def test_flatten_scales_parameter_count_with_grid():
    # Only the global branch's first Dense depends on the size: it has
    # (H/32)^2 * C_bridge * units weights (tiny: C_bridge 128, units 256).
    small = build_colorizer(get_preset("tiny"))
    large = build_colorizer(get_preset("tiny", image_size=96))
    a, b = block_parameter_counts(small), block_parameter_counts(large)
    assert b["Global"] - a["Global"] == (3 * 3 - 2 * 2) * 128 * 256
    assert {k: v for k, v in a.items() if k not in ("Global", "total")} == {
        k: v for k, v in b.items() if k not in ("Global", "total")}
    out = large(np.zeros((1, 96, 96, 1), np.float32))
    assert tuple(out["ab"].shape) == (1, 96, 96, 2)


# --- config ----------------------------------------------------------------

def test_presets_and_config_validation():
    paper, tiny_cfg = get_preset("paper"), get_preset("tiny")
    assert (paper.image_size, paper.num_classes, paper.width, paper.fusion) == (
        256, 137, 1.0, True)
    assert (tiny_cfg.image_size, tiny_cfg.num_classes, tiny_cfg.width) == (
        64, 4, 0.25)
    assert dataclasses.replace(paper, fusion=False).fusion is False
    with pytest.raises(ValueError, match="preset"):
        get_preset("huge")
    with pytest.raises(ValueError, match="image_szie"):
        get_preset("tiny", image_szie=64)
    for bad in (100, 0, 16, 256.0):
        with pytest.raises(ValueError, match="image_size"):
            ModelConfig(image_size=bad)
    with pytest.raises(ValueError, match="num_classes"):
        ModelConfig(num_classes=1)
    with pytest.raises(ValueError, match="width"):
        ModelConfig(width=0)
    with pytest.raises(ValueError, match="config"):
        build_colorizer({"image_size": 64})
    assert paper.encoder_blocks == (3, 4, 6, 3) and tiny_cfg.encoder_blocks == (1, 1, 1, 1)
    assert ModelConfig(encoder_blocks=[2, 2, 2, 2]).encoder_blocks == (2, 2, 2, 2)  # as JSON gives it back
    for bad in ((3, 4, 6), (3, 0, 6, 3), (1.5, 1, 1, 1), "1111", None):
        with pytest.raises(ValueError, match=r"encoder_blocks must be 4 positive integers \(ResNet34: \[3, 4, 6, 3\]\)"):
            ModelConfig(encoder_blocks=bad)


# --- encoder contract ------------------------------------------------------

def test_encoder_feature_contract():
    for width in (1.0, 0.25):
        encoder = build_encoder(width=width, input_shape=(64, 96, 3))
        feats = encoder(np.zeros((1, 64, 96, 3), np.float32))
        assert tuple(feats) == FEATURE_KEYS
        for key, (channels, stride) in feature_spec(width).items():
            assert tuple(feats[key].shape) == (1, 64 // stride, 96 // stride,
                                               channels), key
    assert feature_spec(1.0) == {"stem": (64, 2), "layer1": (64, 4),
                                 "layer2": (128, 8), "layer3": (256, 16),
                                 "layer4": (512, 32)}
    # Deterministic names: checkpoints and the port rely on them.
    names = [layer.name for layer in build_encoder(width=0.25).layers]
    for name in ("stem_conv", "stem_bn", "stack1_block3_conv2",
                 "stack2_block1_proj_conv", "stack3_block6_bn2",
                 "stack4_block3_out"):
        assert name in names
    # Fewer blocks per stage: same strides, channels and names, a block fewer where asked.
    short = build_encoder(width=0.25, input_shape=(64, 96, 3), stage_blocks=(1, 2, 1, 1))
    feats = short(np.zeros((1, 64, 96, 3), np.float32))
    for key, (channels, stride) in feature_spec(0.25).items():
        assert tuple(feats[key].shape) == (1, 64 // stride, 96 // stride, channels), key
    names = {layer.name for layer in short.layers}
    assert {"stack2_block2_out", "stack3_block1_proj_conv"} <= names and "stack1_block2_out" not in names
    # The ImageNet port fits ResNet34's blocks only.
    with pytest.raises(ValueError, match=r"need the blocks \[3, 4, 6, 3\] per stage, got \[1, 2, 1, 1\]"):
        models.load_encoder_weights(build_encoder(stage_blocks=(1, 2, 1, 1)), "unused.weights.h5")


def test_colorizer_uses_encoder_as_submodel(tiny):
    encoder = tiny.get_layer("encoder")
    assert isinstance(encoder, models.ResNet34Encoder)
    assert encoder is tiny.encoder
    assert tiny.config == get_preset("tiny")


# --- training ----------------------------------------------------------------
#
# One training step of every variant (dtype policies included) is in
# test_model_battery.py; the compiled step is traced by the trainer tests.


def test_all_unlabelled_training_step_is_finite(tiny):
    """No scene label in the batch: class loss exactly 0 (not NaN), the class head gets no update."""
    config = get_preset("tiny")
    loss, weights = colorizer_losses(config, class_weight=1.0)
    tiny.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, loss_weights=weights, run_eagerly=True)
    l_in, targets = _batch(config, batch=4, labels=[-1, -1, -1, -1])
    before = {w.path: w.numpy().copy() for w in tiny.trainable_weights}
    logs = tiny.train_on_batch(l_in, targets, return_dict=True)
    assert logs["class_loss"] == 0.0
    np.testing.assert_allclose(logs["loss"], logs["ab_loss"], rtol=1e-6)
    after = {w.path: w.numpy() for w in tiny.trainable_weights}
    assert all(np.isfinite(w).all() for w in after.values())
    head = tiny.get_layer("class2_dense").kernel.path
    np.testing.assert_array_equal(after[head], before[head])  # zero gradient, zero Adam step
    changed = [p for p in after if not np.array_equal(after[p], before[p])]
    assert tiny.get_layer("encoder").get_layer("stem_conv").kernel.path in changed
    assert len(changed) > 0.8 * len(after), (len(changed), len(after))


# --- losses -----------------------------------------------------------------

def test_class_loss_ignores_unlabelled():
    config = get_preset("tiny")
    loss, weights = colorizer_losses(config, class_weight=0.01)
    assert weights == {"ab": 1.0, "class": 0.01}
    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25],
                      [0.1, 0.2, 0.3, 0.4]], np.float32)
    ce = loss["class"]
    # All unlabelled: exactly zero, not NaN, and zero gradient.
    assert float(ce(np.array([-1, -1, -1]), probs)) == 0.0
    # Mean over the labelled images only.
    got = float(ce(np.array([0, -1, 3]), probs))
    np.testing.assert_allclose(got, -(np.log(0.7) + np.log(0.4)) / 2, rtol=1e-5)
    mse = loss["ab"]
    a, b = np.full((1, 4, 4, 2), 0.5, np.float32), np.full((1, 4, 4, 2), 0.7, np.float32)
    np.testing.assert_allclose(float(mse(a, b)), 0.04, rtol=1e-5)


def test_no_fusion_has_no_class_loss():
    loss, weights = colorizer_losses(get_preset("tiny", fusion=False),
                                     class_weight=1.0)
    assert list(loss) == ["ab"] and weights == {"ab": 1.0}
    with pytest.raises(ValueError, match="class_weight"):
        colorizer_losses(get_preset("tiny"), class_weight=-1)
