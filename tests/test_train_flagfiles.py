"""The experiments' flagfiles: the paper's configurations P1-P4, the CPU recipes and how their variants differ;
every flag has help and a config field, and a resolved config round-trips through its flags."""

import pathlib

import pytest
from absl import flags as absl_flags

from keras_colorize.training import flags as kc_flags
from keras_colorize.training import trainer
from train_helpers import parse_flagfile, tiny_config
from keras_colorize.data import places365
from keras_colorize.data import demo


REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO_ROOT / "experiments"


# Section 4.1 and Table 2 of the paper: optimizer, learning rate, batch, class-loss weight, fusion, average MAE.
PAPER_CONFIGS = {
    "p1": ("adadelta", 0.03, 64, 1.0, True, "0.054470"),
    "p2": ("adam", 0.01, 16, 1.0, True, "0.044688"),
    "p3": ("adam", 0.01, 16, 0.01, True, "0.043767"),
    "p4": ("adam", 0.01, 64, 1.0, True, "0.045120"),
    "p2_nofusion": ("adam", 0.01, 16, 0.0, False, "0.040888"),
}



# ---------------------------------------------------------------------------
# Flagfiles
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PAPER_CONFIGS))
def test_paper_flagfiles_match_the_paper_and_validate(name, monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    optimizer, lr, batch, class_weight, fusion, table2_mae = PAPER_CONFIGS[name]
    config = parse_flagfile(f"experiments/{name}.flags")
    assert (config.optimizer, config.learning_rate, config.batch_size) == (optimizer, lr, batch)
    assert (config.class_loss_weight, config.fusion) == (class_weight, fusion)
    assert (config.image_size, config.num_classes, config.width, config.epochs) == (256, 137, 1.0, 10)
    assert config.precision == "mixed_float16"
    assert config.encoder_weights.endswith(".weights.h5")
    assert config.work_dir == f"runs/{name}"
    # No data here: everything but the data and the encoder file must validate.
    trainer.validate(config, check_data=False)
    header = (EXPERIMENTS / f"{name}.flags").read_text().split("\n--")[0]
    assert f"python -m keras_colorize.train --flagfile=experiments/{name}.flags" in header
    assert table2_mae in header and "make_shards" in header and "GPU" in header


def test_every_flagfile_parses(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    names = sorted(p.name for p in EXPERIMENTS.glob("*.flags"))
    assert {"base.flags", "demo.flags", *(f"{n}.flags" for n in PAPER_CONFIGS)} <= set(names)
    for name in names:
        path = f"experiments/{name}"
        if name == "base.flags":  # shared settings only: no work_dir of its own
            absl_flags.FLAGS(["train", f"--flagfile={path}", "--work_dir=runs/base"])
            config = kc_flags.train_config()
            absl_flags.FLAGS.unparse_flags()
        else:
            config = parse_flagfile(path)
        trainer.validate(config, check_data=False)


def test_scenes_flagfiles_are_the_fusion_ablation_of_one_recipe(monkeypatch):
    """The paper U-Net's recipe and its w/o-fusion twin: same data, budget and seed; runbook headers."""
    monkeypatch.chdir(REPO_ROOT)
    fusion = parse_flagfile("experiments/scenes_cpu.flags")
    nofusion = parse_flagfile("experiments/scenes_cpu_nofusion.flags")
    assert fusion.model_preset == "paper" and fusion.fusion and not nofusion.fusion
    assert fusion.num_classes == len(places365.read_class_list(EXPERIMENTS / "scenes_classes.txt")) == 12
    assert fusion.precision == "mixed_bfloat16" and fusion.encoder_weights == ""
    differ = {k for k, v in fusion.to_dict().items() if nofusion.to_dict()[k] != v}
    assert differ == {"work_dir", "fusion"}
    for name in ("scenes_cpu", "scenes_cpu_nofusion"):
        header = (EXPERIMENTS / f"{name}.flags").read_text().split("\n--")[0]
        assert f"python -m keras_colorize.train --flagfile=experiments/{name}.flags" in header
        assert "Time (measured" in header and "Result (measured)" in header and "2 CPU cores" in header
        trainer.validate(parse_flagfile(f"experiments/{name}.flags"), check_data=False)


def test_scenes_loss_experiments_change_only_the_loss(monkeypatch):
    """The MSE and rebalanced-CE runs of the U-Net recipe differ from it in the a*b* loss alone."""
    monkeypatch.chdir(REPO_ROOT)
    base = parse_flagfile("experiments/scenes_cpu.flags").to_dict()
    expected = {"scenes_cpu_mse": {"work_dir", "ab_loss"},
                "scenes_cpu_rebalanced": {"work_dir", "ab_loss", "ab_prior"}}
    for name, fields in expected.items():
        config = parse_flagfile(f"experiments/{name}.flags")
        assert {k for k, v in config.to_dict().items() if base[k] != v} == fields, name
        header = (EXPERIMENTS / f"{name}.flags").read_text().split("\n--")[0]
        assert f"python -m keras_colorize.train --flagfile=experiments/{name}.flags" in header
        assert "Time (measured" in header and "Result (measured)" in header and "PENDING" not in header
        trainer.validate(config, check_data=False)
    assert parse_flagfile("experiments/scenes_cpu_rebalanced.flags").ab_loss == "rebalanced_ce"


def test_iizuka_experiments_change_one_thing_of_the_bundled_recipe(monkeypatch):
    """The 32-epoch run, the w/o-global-features twin and the scale-jitter runs of the bundled recipe, runbooks measured."""
    monkeypatch.chdir(REPO_ROOT)
    base = parse_flagfile("experiments/scenes_cpu_iizuka2016.flags")
    assert base.model_preset == "iizuka2016" and base.fusion
    expected = {"scenes_cpu_iizuka2016_long": {"work_dir", "epochs"},
                "scenes_cpu_iizuka2016_nofusion": {"work_dir", "fusion"},
                "scenes_cpu_iizuka2016_jitter": {"work_dir", "scale_jitter"},
                "scenes_cpu_iizuka2016_jitter_long": {"work_dir", "scale_jitter", "epochs"},
                "scenes_cpu_iizuka2016_jitter_long_nofusion": {"work_dir", "scale_jitter", "epochs", "fusion"}}
    for name, fields in expected.items():
        config = parse_flagfile(f"experiments/{name}.flags")
        assert {k for k, v in config.to_dict().items() if base.to_dict()[k] != v} == fields, name
        header = (EXPERIMENTS / f"{name}.flags").read_text().split("\n--")[0]
        assert f"python -m keras_colorize.train --flagfile=experiments/{name}.flags" in header
        assert "Time (measured" in header and "Result (measured)" in header and "to be measured" not in header
        trainer.validate(config, check_data=False)
    long_run = parse_flagfile("experiments/scenes_cpu_iizuka2016_long.flags")
    assert long_run.epochs == 2 * base.epochs
    assert not parse_flagfile("experiments/scenes_cpu_iizuka2016_nofusion.flags").fusion
    assert base.scale_jitter == 1.0 and parse_flagfile("experiments/scenes_cpu_iizuka2016_jitter.flags").scale_jitter > 1
    jitter_long = parse_flagfile("experiments/scenes_cpu_iizuka2016_jitter_long.flags")
    assert jitter_long.scale_jitter == parse_flagfile("experiments/scenes_cpu_iizuka2016_jitter.flags").scale_jitter
    assert base.epochs < jitter_long.epochs < long_run.epochs
    twin = parse_flagfile("experiments/scenes_cpu_iizuka2016_jitter_long_nofusion.flags")
    assert jitter_long.fusion and not twin.fusion
    assert {k for k, v in twin.to_dict().items() if jitter_long.to_dict()[k] != v} == {"work_dir", "fusion"}


def test_guided_recipe_stage_two_changes_the_hint_schedule_of_stage_one(monkeypatch):
    """Stage 2 warm-starts from stage 1's release with more automatic examples; nothing else of the recipe moves."""
    monkeypatch.chdir(REPO_ROOT)
    one = parse_flagfile("experiments/scenes_guided.flags")
    two = parse_flagfile("experiments/scenes_guided_stage2.flags")
    assert one.hints and two.hints and one.automatic_probability == 0.0 < two.automatic_probability
    changed = {k for k, v in two.to_dict().items() if one.to_dict()[k] != v}
    assert changed == {"work_dir", "init_from", "automatic_probability", "learning_rate", "warmup_steps", "epochs"}
    header = (EXPERIMENTS / "scenes_guided_stage2.flags").read_text().split("\n--")[0]
    assert "python -m keras_colorize.train --flagfile=experiments/scenes_guided_stage2.flags" in header
    assert f"> {two.init_from}" in header  # how to recreate the model it starts from


def test_guided_recipe_stage_three_trains_only_the_point_palette_and_hint_layers(monkeypatch):
    """Stage 3 adds the point palette to stage 2's release and trains only it and the hint layers."""
    monkeypatch.chdir(REPO_ROOT)
    two = parse_flagfile("experiments/scenes_guided_stage2.flags")
    three = parse_flagfile("experiments/scenes_guided_stage3.flags")
    assert three.point_palette and three.train_only_prefixes() == ("point", "hint")
    assert three.model_config().point_palette and not two.model_config().point_palette
    changed = {k for k, v in three.to_dict().items() if two.to_dict()[k] != v}
    assert changed == {"work_dir", "init_from", "point_palette", "train_only", "automatic_probability",
                       "learning_rate", "warmup_steps", "epochs", "steps_per_epoch", "val_steps"}
    header = (EXPERIMENTS / "scenes_guided_stage3.flags").read_text().split("\n--")[0]
    assert "python -m keras_colorize.train --flagfile=experiments/scenes_guided_stage3.flags" in header
    assert f"> {three.init_from}" in header


def test_demo_flagfile(monkeypatch):
    monkeypatch.chdir(REPO_ROOT)
    config = parse_flagfile("experiments/demo.flags")
    assert config.work_dir == "runs/demo" and config.demo_data_dir
    assert config.precision == "float32" and config.strategy == "default"
    assert config.image_size <= 64 and config.num_classes >= demo.NUM_DEMO_CLASSES
    assert config.epochs * config.steps_per_epoch * config.batch_size <= 20000  # minutes on 2 cores, not hours


def test_resolved_flags_reproduce_the_config(tmp_path, monkeypatch, shards):
    config = tiny_config(shards, tmp_path / "run", lr_schedule="cosine", fusion=False, class_loss_weight=0.0)
    path = tmp_path / "flags.txt"
    path.write_text(config.to_flags())
    assert parse_flagfile(str(path)) == config


def test_every_flag_has_help_and_a_config_field():
    fields = {f for f in trainer.TrainConfig.__dataclass_fields__}
    ours = {f.name: f for f in absl_flags.FLAGS.get_flags_for_module(kc_flags)}
    assert set(ours) == fields
    for flag in ours.values():
        assert len(flag.help) > 15, flag.name


