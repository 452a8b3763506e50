"""ImageNet ResNet34 port: parity with a torchvision-layout PyTorch model and
clear errors for checkpoints that do not match."""

import pathlib
import stat
import subprocess
import sys

import numpy as np
import pytest

from keras_colorize.models import (
    build_colorizer,
    build_encoder,
    get_preset,
    load_encoder_weights,
)
from keras_colorize.models import torchvision_port
from keras_colorize.models.torchvision_port import PortError

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


# --- a torchvision-layout ResNet34 written here (torchvision is not needed) --

def _torch():
    return pytest.importorskip(
        "torch", reason="PyTorch is the weight-port parity reference; "
        "install keras_colorize[test] (torch==2.13.0) to run this test")


def _torch_resnet34():
    torch = _torch()
    nn = torch.nn

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False),
                    nn.BatchNorm2d(cout))

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            y = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(y)) + identity)

    class ResNet34(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin = 64
            for i, (cout, blocks) in enumerate(
                    ((64, 3), (128, 4), (256, 6), (512, 3)), start=1):
                layers = []
                for j in range(blocks):
                    layers.append(BasicBlock(cin, cout,
                                             2 if (i > 1 and j == 0) else 1))
                    cin = cout
                setattr(self, f"layer{i}", nn.Sequential(*layers))
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512, 1000)

        def features(self, x):
            out = {}
            x = self.relu(self.bn1(self.conv1(x)))
            out["stem"] = x
            x = self.maxpool(x)
            for i in range(1, 5):
                x = getattr(self, f"layer{i}")(x)
                out[f"layer{i}"] = x
            return out

    torch.manual_seed(0)
    model = ResNet34()
    # Non-trivial BatchNorm statistics and affine terms, so a mix-up of
    # gamma/beta/mean/variance shows in the features.
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.2 * torch.randn(n, generator=gen))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                m.num_batches_tracked.fill_(7)
    return model.eval()


@pytest.fixture(scope="module")
def torch_checkpoints(tmp_path_factory):
    """(model, .pth path, .safetensors path) of one random ResNet34."""
    torch = _torch()
    from safetensors.torch import save_file  # pylint: disable=import-outside-toplevel
    model = _torch_resnet34()
    directory = tmp_path_factory.mktemp("resnet34")
    pth = directory / "resnet34-random.pth"
    torch.save(model.state_dict(), pth)
    st = directory / "resnet34-random.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, st)
    return model, pth, st


@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_port_parity_with_torchvision_layout(torch_checkpoints, tmp_path, fmt):
    torch = _torch()
    model, pth, st = torch_checkpoints
    output = tmp_path / "resnet34_imagenet.weights.h5"
    count = torchvision_port.port_resnet34(pth if fmt == "pth" else st, output)
    assert count == 36 * 1 + 36 * 4  # 36 convs + 36 BNs x 4 tensors
    assert output.exists()
    encoder = build_encoder(width=1.0)
    load_encoder_weights(encoder, output)
    rng = np.random.default_rng(0)
    worst = 0.0
    for size in (224, 256):
        x = rng.standard_normal((2, 3, size, size)).astype(np.float32)
        with torch.no_grad():
            ref = {k: v.permute(0, 2, 3, 1).numpy()
                   for k, v in model.features(torch.from_numpy(x)).items()}
        got = {k: np.asarray(v) for k, v in
               encoder(x.transpose(0, 2, 3, 1), training=False).items()}
        for key, value in ref.items():
            assert got[key].shape == value.shape, key
            diff = float(np.abs(got[key] - value).max())
            assert diff <= 1e-4, (size, key, diff)
            worst = max(worst, diff)
            assert float(np.abs(value).max()) > 0.1  # not a trivial output
    print(f"max abs diff over all pyramid outputs, 224 and 256 px: {worst:.2e}")


@pytest.mark.torch
@pytest.mark.slow
def test_ported_weights_load_into_paper_colorizer(torch_checkpoints, tmp_path):
    _, _, st = torch_checkpoints
    output = tmp_path / "models" / "enc.weights.h5"  # a folder that does not exist yet
    torchvision_port.port_resnet34(st, output)
    reference = build_encoder(width=1.0)
    load_encoder_weights(reference, output)
    colorizer = build_colorizer(get_preset("paper"))
    load_encoder_weights(colorizer, output)
    for a, b in zip(colorizer.get_layer("encoder").weights, reference.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # The torchvision checkpoint itself is accepted too (ported in memory).
    fresh = build_encoder(width=1.0)
    load_encoder_weights(fresh, st)
    for a, b in zip(fresh.weights, reference.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# --- errors (no PyTorch needed) ----------------------------------------------

def _numpy_state_dict():
    """A torchvision-layout ResNet34 state dict of zeros (shapes only)."""
    encoder = build_encoder(width=1.0)
    state = {}
    for keras_name, torch_name in torchvision_port.torchvision_names().items():
        layer = encoder.get_layer(keras_name)
        if hasattr(layer, "kernel"):
            kh, kw, cin, cout = layer.kernel.shape
            state[f"{torch_name}.weight"] = np.zeros((cout, cin, kh, kw), np.float32)
        else:
            n = layer.gamma.shape[0]
            for field in ("weight", "bias", "running_mean", "running_var"):
                state[f"{torch_name}.{field}"] = np.zeros((n,), np.float32)
            state[f"{torch_name}.num_batches_tracked"] = np.zeros((), np.int64)
    state["fc.weight"] = np.zeros((1000, 512), np.float32)
    state["fc.bias"] = np.zeros((1000,), np.float32)
    return state


@pytest.fixture(scope="module")
def state_dict():
    return _numpy_state_dict()


def _save_safetensors(state, path):
    from safetensors.numpy import save_file  # pylint: disable=import-outside-toplevel
    save_file(state, str(path))
    return path


def test_safetensors_reads_without_torch(state_dict, tmp_path, monkeypatch):
    path = _save_safetensors(state_dict, tmp_path / "r34.safetensors")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails
    state = torchvision_port.read_checkpoint(path)
    assert sorted(state) == sorted(state_dict)
    assert state["layer3.0.downsample.0.weight"].shape == (256, 128, 1, 1)
    pth = tmp_path / "x.pth"
    pth.write_bytes(b"x")
    with pytest.raises(PortError, match="needs PyTorch"):
        torchvision_port.read_checkpoint(pth)
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)  # the reader is safetensors.numpy
    with pytest.raises(PortError, match=r"needs the safetensors package: pip install 'keras_colorize\[torch\]'"):
        torchvision_port.read_checkpoint(path)


@pytest.mark.parametrize("change, message", [
    ("missing", r"1 missing tensor\(s\): layer2\.1\.bn1\.running_var"),
    ("extra", r"1 unexpected tensor\(s\): layer5\.0\.conv1\.weight"),
    ("shape", r"1 tensor\(s\) with the wrong shape: conv1\.weight "
              r"\(64, 1, 7, 7\) \(expected \(64, 3, 7, 7\)\)"),
], ids=["missing", "extra", "shape"])
def test_port_errors_name_the_tensors(state_dict, change, message):
    state = dict(state_dict)
    if change == "missing":
        del state["layer2.1.bn1.running_var"]
    elif change == "extra":
        state["layer5.0.conv1.weight"] = np.zeros((3, 3), np.float32)
    else:
        state["conv1.weight"] = np.zeros((64, 1, 7, 7), np.float32)
    encoder = build_encoder(width=1.0)
    before = [w.numpy().copy() for w in encoder.weights]
    with pytest.raises(PortError, match=message):
        torchvision_port.assign_state_dict(encoder, state)
    # Nothing was assigned.
    for a, b in zip(before, encoder.weights):
        np.testing.assert_array_equal(a, b.numpy())


def test_port_rejects_bad_arguments(state_dict, tmp_path):
    with pytest.raises(ValueError, match="width=1.0"):
        torchvision_port.assign_state_dict(build_encoder(width=0.25), state_dict)
    with pytest.raises(ValueError, match="width=1.0"):
        load_encoder_weights(build_colorizer(get_preset("tiny")), tmp_path / "w.weights.h5")
    with pytest.raises(ValueError, match="not found"):
        load_encoder_weights(build_encoder(width=1.0), tmp_path / "none.weights.h5")
    with pytest.raises(ValueError, match="output"):
        torchvision_port.port_resnet34(tmp_path / "x.safetensors", tmp_path / "w.h5")
    with pytest.raises(PortError, match="does not exist"):
        torchvision_port.port_resnet34(tmp_path / "nope.safetensors",
                                       tmp_path / "w.weights.h5")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\xff" * 4)
    with pytest.raises(PortError, match="not a safetensors file"):
        torchvision_port.read_checkpoint(bad)
    header = b'{"conv1.weight":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}'
    bf16 = tmp_path / "bf16.safetensors"
    bf16.write_bytes(len(header).to_bytes(8, "little") + header + b"\x80\x3f\x00\x40")
    np.testing.assert_array_equal(  # bfloat16 1.0, 2.0 (NumPy learns the dtype from ml_dtypes, via TF)
        np.asarray(torchvision_port.read_checkpoint(bf16)["conv1.weight"], np.float32), [1.0, 2.0])


def test_cli_ports_and_reports_errors(state_dict, tmp_path):
    good = _save_safetensors(state_dict, tmp_path / "r34.safetensors")
    broken = dict(state_dict)
    del broken["conv1.weight"]
    bad = _save_safetensors(broken, tmp_path / "broken.safetensors")
    out = tmp_path / "resnet34_imagenet.weights.h5"

    def run(checkpoint, output):
        return subprocess.run(
            [sys.executable, "-m", "keras_colorize.tools.port_resnet34",
             f"--checkpoint={checkpoint}", f"--output={output}"],
            capture_output=True, text=True, timeout=300, cwd=str(REPO_ROOT), umask=0o022)

    inputs = sorted(p.name for p in tmp_path.iterdir())
    result = run(bad, out)
    assert result.returncode != 0
    assert "missing tensor(s): conv1.weight" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == inputs  # nothing written, no temporary file
    result = run(good, out)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ported 180 tensors" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(inputs + [out.name])
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # 0666 less the umask
    encoder = build_encoder(width=1.0)
    load_encoder_weights(encoder, out)
    assert all(not np.any(w.numpy()) for w in encoder.weights)  # all zeros
