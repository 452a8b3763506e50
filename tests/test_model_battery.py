"""The model battery (STYLE.md 10): every model variant through the same checks, on tiny inputs.

Variants: every preset of ``keras_colorize.models.registry`` (so a preset added
later is covered), shrunk to 64 px, 4 classes and width <= 0.25, plus the
U-Net without fusion, under ``mixed_float16`` and ``mixed_bfloat16``, with the
bins head (``--ab_loss=rebalanced_ce``), and Iizuka et al. without global
features. Each is built and compiled by the trainer's own
``trainer.build_and_compile`` (same losses, loss weights, optimizer, dtype
policy), once per module; one SavedModel of the export module is made per
variant and converted to TFLite from that same SavedModel.

Checks, one test function each: output contract and ranges, dtype policy,
config round trip (the policy included), one training step without NaN,
``.keras`` save/load equality, SavedModel and float32 TFLite parity.
Parameter counts per preset are pinned in the model's own test file.
"""

import contextlib
import dataclasses
import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_colorize import fileio
from keras_colorize import models
from keras_colorize.export import bn_folding
from keras_colorize.export import litert_runner
from keras_colorize.export import tflite
from keras_colorize.models import ab_bins
from keras_colorize.models import model_contract
from keras_colorize.models import registry
from keras_colorize.training import trainer

REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
SIZE, CLASSES, MAX_WIDTH = 64, 4, 0.25
LABELS = np.array([0, 3, -1, 1], np.int32)  # one unlabelled image (class -1)


def _shrunk(name):
    """TrainConfig fields of preset ``name`` at test size."""
    preset = models.get_preset(name)
    fields = {"model_preset": name, "image_size": SIZE, "width": min(preset.width, MAX_WIDTH)}
    if hasattr(preset, "num_classes"):
        fields["num_classes"] = CLASSES
    return fields


def _variants():
    """id -> TrainConfig fields; presets whose shrunk model is the same share one id ("paper+tiny")."""
    specs = [(name, _shrunk(name)) for name in registry.preset_names()]
    specs += [
        ("unet-nofusion", dict(_shrunk("tiny"), fusion=False)),
        ("unet-mixed_float16", dict(_shrunk("tiny"), precision="mixed_float16")),
        ("unet-mixed_bfloat16", dict(_shrunk("tiny"), precision="mixed_bfloat16")),
        ("unet_bins", dict(_shrunk("tiny"), ab_loss=models.BINS_LOSS)),
    ]
    if "fusion" in {f.name for f in dataclasses.fields(models.get_preset("iizuka2016"))}:
        specs.append(("iizuka2016-nofusion", dict(_shrunk("iizuka2016"), fusion=False)))
    variants, ids_of = {}, {}
    for variant_id, fields in specs:
        config = _train_config(fields, "unused")
        key = (repr(config.model_config()), config.precision)
        if key in ids_of:
            old = ids_of[key]
            variants[f"{old}+{variant_id}"] = variants.pop(old)
            ids_of[key] = f"{old}+{variant_id}"
        else:
            variants[variant_id], ids_of[key] = fields, variant_id
    return variants


def _train_config(fields, tmp, prior_path=""):
    config = trainer.TrainConfig(work_dir=f"{tmp}/run", demo_data_dir=f"{tmp}/demo", batch_size=len(LABELS),
                                 learning_rate=1e-3,
                                 precision=fields.get("precision", "float32"),
                                 **{k: v for k, v in fields.items() if k != "precision"})
    if prior_path and config.ab_loss == models.BINS_LOSS:
        config = dataclasses.replace(config, ab_prior=str(prior_path))
    return config


VARIANTS = _variants()


def _batch(model, seed=0):
    rng = np.random.default_rng(seed)
    l_in = rng.random((len(LABELS), SIZE, SIZE, 1), dtype=np.float32)
    targets = {"ab": rng.uniform(0.3, 0.7, (len(LABELS), SIZE, SIZE, 2)).astype(np.float32)}
    if "class" in model.output:
        targets["class"] = LABELS
    return l_in, targets


@contextlib.contextmanager
def _global_policy(name):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _numpy(outputs):
    return {k: keras.ops.convert_to_numpy(v) for k, v in outputs.items()}


@dataclasses.dataclass
class Built:
    variant_id: str
    config: trainer.TrainConfig
    model: keras.Model
    loss: dict
    tmp: object


@pytest.fixture(scope="module")
def prior_path(tmp_path_factory):
    """A peaked a*b* prior, so the rebalancing weights of the bins models are not uniform."""
    path = tmp_path_factory.mktemp("prior") / "prior.npy"
    np.save(path, np.random.default_rng(1).random(ab_bins.NUM_BINS) ** 4)
    return path


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def built(request, prior_path, tmp_path_factory):
    """The variant built and compiled by the trainer (eager steps: tracing costs more than the check)."""
    tmp = tmp_path_factory.mktemp(request.param)
    config = _train_config(VARIANTS[request.param], tmp, prior_path)
    model, loss = trainer.build_and_compile(config, tf.distribute.get_strategy(), total_steps=16)
    model.run_eagerly = True  # the compiled path is traced by the trainer tests (test_train.py)
    assert keras.config.dtype_policy().name == "float32"  # build_and_compile restored the global policy
    return Built(request.param, config, model, loss, tmp)


@pytest.fixture(scope="module")
def trained(built):
    """(before, logs): the weights before one training step on a labelled + unlabelled batch, and its logs.

    Under mixed_float16 the dynamic loss scale starts at 2**15 and skips the steps whose scaled
    gradients overflow (five on the tiny U-Net, BUILD_NOTES.md), so it steps until the weights move.
    """
    model = built.model
    l_in, targets = _batch(model)
    before = [w.numpy().copy() for w in model.trainable_weights]
    logs = model.train_on_batch(l_in, targets, return_dict=True)
    for _ in range(12 if built.config.precision == "mixed_float16" else 0):
        if not np.array_equal(before[0], model.trainable_weights[0].numpy()):
            break
        logs = model.train_on_batch(l_in, targets, return_dict=True)
    return before, logs


@pytest.fixture(scope="module")
def reloaded(built, trained):
    """The trained variant saved as .keras and loaded back (load_model rebuilds it with from_config).

    Loaded under the policy it was built with: the config holds no dtype policy, a model builds and
    loads under the global one (ModelConfig); the trainer relies on it to save float32 models.
    """
    path = built.tmp / "model.keras"
    built.model.save(path)
    with _global_policy(built.config.precision):
        return keras.saving.load_model(path)


@pytest.fixture(scope="module")
def exported(built, trained):
    """(SavedModel, float32 TFLite file, folded BN pairs), shared by the two parity checks.

    One SavedModel of the export module (``tflite.tflite_saved_model``: BN folded, rebuilt in
    float32, ``saved_model.build_export_archive`` with the L signature) is reloaded with plain
    TensorFlow and converted by ``tflite.convert_saved_model``, as ``convert_variants`` does.
    """
    with tflite.tflite_saved_model(built.model) as (path, pairs):
        lite = built.tmp / "colorizer_float32.tflite"
        fileio.atomic_write_bytes(lite, tflite.convert_saved_model(path, "float32"))
        yield tf.saved_model.load(path), lite, pairs


def _float32_reference(built, l_in):
    """What the exported float32 network should compute: the model, or a mixed model's float32 rebuild."""
    model = built.model if built.config.precision == "float32" else bn_folding.as_float32(built.model)
    return _numpy(model(l_in, training=False))


def test_every_preset_is_in_the_battery():
    covered = {name for variant_id in VARIANTS for name in variant_id.split("+")}
    assert set(registry.preset_names()) <= covered, sorted(VARIANTS)
    assert len(VARIANTS) >= len(registry.preset_names()) + 4


def test_output_contract_and_ranges(built):
    model, config = built.model, built.config
    contract = model_contract.check_model_contract(model)
    assert (contract.image_size, contract.ab_key) == (SIZE, "ab")
    assert model.inputs[0].name == "L" or model.input.name == "L"
    has_class = config.fusion
    assert contract.num_classes == (CLASSES if has_class else None)
    expected = {"ab"} | ({"class"} if has_class else set()) | (
        {"ab_bins"} if config.ab_loss == models.BINS_LOSS else set())
    l_in, _ = _batch(model, seed=1)
    for training in (False, True):
        out = _numpy(model(l_in, training=training))
        assert set(out) == expected
        assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in out.values()), training
        ab = out["ab"]
        assert ab.shape == (len(l_in), SIZE, SIZE, 2)
        assert ab.min() >= 0 and ab.max() <= 1
        if has_class:
            assert out["class"].shape == (len(l_in), CLASSES) and out["class"].min() >= 0
            np.testing.assert_allclose(out["class"].sum(-1), 1.0, atol=1e-3)
        if "ab_bins" in out:
            assert out["ab_bins"].shape == (len(l_in), SIZE // 4, SIZE // 4, ab_bins.NUM_BINS)
            np.testing.assert_allclose(out["ab_bins"].sum(-1), 1.0, atol=1e-3)
    # Not a constant: with batch statistics (training=True) the sigmoid/annealed mean varies over pixels.
    assert float(np.std(ab)) > 1e-3


def test_dtype_policy(built):
    """Variables are float32; convs and Dense compute in the policy's dtype; the heads in float32."""
    model, precision = built.model, built.config.precision
    compute = "float32" if precision == "float32" else precision.split("_")[1]
    layers = list(model._flatten_layers(include_self=False, recursive=True))  # noqa: SLF001
    assert {w.dtype for w in model.weights} == {"float32"}
    computing = [l for l in layers if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))]
    in_compute = [l.name for l in computing if l.compute_dtype == compute]
    assert len(in_compute) > 0.8 * len(computing), (compute, len(in_compute), len(computing))
    for name in model.output:  # the output layers (sigmoid, softmax, annealed mean) are float32
        assert model.get_layer(name).compute_dtype == "float32", name
    assert model.dtype_policy.name == precision


def test_config_round_trip(built, reloaded):
    """get_config -> JSON (the .keras file's config.json) -> from_config rebuilds the model, its dtype policies too."""
    model = built.model
    assert json.loads(json.dumps(model.get_config())) == model.get_config()
    assert type(reloaded) is type(model)
    assert reloaded.get_config() == model.get_config()
    assert reloaded.config == model.config == built.config.model_config(getattr(model.config, "prior", None))
    layers = lambda m: [(l.name, l.dtype_policy.name) for l in m._flatten_layers(recursive=True)]  # noqa: E731, SLF001
    assert layers(reloaded) == layers(model)  # the dtype policy of every layer included
    if built.config.precision != "float32":
        # Under the default policy the same config builds the float32 network (what the trainer saves).
        assert keras.config.dtype_policy().name == "float32"
        float32 = type(model).from_config(model.get_config())
        assert {policy for _, policy in layers(float32)} == {"float32"}


def test_training_step_without_nan(built, trained):
    model, config = built.model, built.config
    before, logs = trained
    assert all(np.isfinite(v) for v in logs.values()), logs
    after = [w.numpy() for w in model.trainable_weights]
    assert all(np.isfinite(w).all() for w in after)
    changed = sum(not np.array_equal(a, b) for a, b in zip(before, after))
    assert changed > 0.9 * len(before), (changed, len(before))
    # The total is the trainer's weighted sum: the ab term (bins CE for bins models) + lambda * class CE.
    # (Keras logs per-output losses only for models with more than one.)
    assert sorted(built.loss) == sorted(model.output)
    if len(built.loss) > 1:
        ab_term = logs["ab_bins_loss"] if config.ab_loss == models.BINS_LOSS else logs["ab_loss"]
        class_term = config.class_loss_weight * logs["class_loss"] if config.fusion else 0.0
        np.testing.assert_allclose(logs["loss"], ab_term + class_term, rtol=1e-4)
    if config.fusion:
        assert logs["class_loss"] > 0  # three labelled images; the unlabelled one adds nothing
    if config.precision == "mixed_float16":
        assert float(model.optimizer.dynamic_scale) >= 1.0


def test_keras_save_load_equal(built, reloaded):
    model = built.model  # trained: BN statistics moved off their initial values
    assert [w.path for w in reloaded.weights] == [w.path for w in model.weights]
    for a, b in zip(reloaded.weights, model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    l_in, _ = _batch(model, seed=3)
    want = _numpy(model(l_in, training=False))
    got = _numpy(reloaded(l_in, training=False))  # eager both sides: graph rewrites round differently
    assert sorted(got) == sorted(want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_saved_model_parity(built, exported):
    loaded = exported[0]  # BN folded where exact (Zhang et al.'s BN follows a ReLU: none there)
    l_in, _ = _batch(built.model, seed=4)
    want = _float32_reference(built, l_in)
    serve = loaded.signatures["serving_default"]
    got = [{k: v.numpy() for k, v in serve(L=tf.constant(one[None])).items()} for one in l_in]
    assert set(got[0]) == {"ab"} | ({"class_probabilities"} if "class" in want else set())
    # Float32 rounding through the folded BatchNorms and TF's graph rewrites: up to ~2e-5 seen.
    np.testing.assert_allclose(np.concatenate([g["ab"] for g in got]), want["ab"], atol=1e-4)
    if "class" in want:
        np.testing.assert_allclose(np.concatenate([g["class_probabilities"] for g in got]), want["class"], atol=1e-4)


def test_float32_tflite_parity(built, exported):
    """A real LiteRT interpreter against the float32 network; the input model keeps its policy."""
    predictor = litert_runner.LiteRTPredictor(str(exported[1]))
    l_in, _ = _batch(built.model, seed=5)
    want = _float32_reference(built, l_in)
    assert predictor.output_names == (("ab", "class_probabilities") if "class" in want else ("ab",))
    got = predictor.predict(l_in)
    assert np.abs(got["ab"] - want["ab"]).max() <= 1e-4
    if "class" in want:
        assert np.abs(got["class_probabilities"] - want["class"]).max() <= 1e-4
    assert built.model.dtype_policy.name == built.config.precision


def test_keras_file_loads_in_a_fresh_process(tiny_model_path, tmp_path):
    """A process that only imports keras_colorize.models (which registers the classes) loads a .keras file."""
    l_in = np.random.default_rng(6).random((2, SIZE, SIZE, 1), dtype=np.float32)
    want = keras.saving.load_model(tiny_model_path).predict(l_in, verbose=0)["ab"]
    np.save(tmp_path / "x.npy", l_in)
    np.save(tmp_path / "ab.npy", want)
    code = ("import numpy as np, keras, keras_colorize.models; "
            f"m = keras.saving.load_model({str(tiny_model_path)!r}); "
            f"print(type(m).__name__, float(np.abs(m.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0)"
            f"['ab'] - np.load({str(tmp_path / 'ab.npy')!r})).max()))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            cwd=str(REPO_ROOT))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-2:] == ["ColorizerModel", "0.0"]
