"""Port torchvision's ImageNet ResNet34 checkpoint into `ResNet34Encoder`.

torchvision publishes the paper's encoder weights as `resnet34-*.pth` (a
PyTorch state dict). This module reads that file (PyTorch needed) or a
`.safetensors` export of the same state dict (the `safetensors` package
needed, no PyTorch), maps every tensor to the encoder's deterministic layer
names and checks that nothing is missing, misshaped or unexpected before
any weight is assigned. Both readers are imported only when used, so the
rest of the package never needs either.

Conv kernels go from PyTorch's (out, in, kh, kw) to Keras' (kh, kw, in, out);
BatchNorm `weight, bias, running_mean, running_var` become `gamma, beta,
moving_mean, moving_variance`. The classifier `fc.*` and the
`num_batches_tracked` counters have no counterpart and are skipped.
"""

import pathlib

import keras
import numpy as np

from keras_colorize import fileio
from keras_colorize.models import resnet34

#: Tensors of a torchvision ResNet34 state dict with no encoder counterpart.
IGNORED_SUFFIXES = ("num_batches_tracked",)
IGNORED_KEYS = ("fc.weight", "fc.bias")

_EXTRA = "pip install 'keras_colorize[torch]'"


class PortError(ValueError):
    """A checkpoint that does not match ResNet34's torchvision layout."""


def read_safetensors(path):
    """Reads a `.safetensors` file into {name: ndarray} with `safetensors.numpy` (no PyTorch).

    bfloat16 tensors come back as `ml_dtypes.bfloat16` arrays (TensorFlow
    registers the dtype with NumPy), which :func:`assign_state_dict` casts.

    Raises:
      PortError: the `safetensors` package is missing, the file is not a
        safetensors file, or a tensor has a dtype NumPy does not know.
    """
    try:
        import safetensors.numpy  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise PortError(f"reading checkpoint={str(path)!r} (.safetensors) needs the safetensors package: "
                        f"{_EXTRA}") from None
    try:
        return safetensors.numpy.load_file(str(path))
    except TypeError as e:  # NumPy has no bfloat16
        raise PortError(f"checkpoint={str(path)!r}: a tensor has a dtype NumPy cannot hold ({e}); "
                        "export the state dict in float32") from None
    except Exception as e:  # noqa: BLE001 - SafetensorError (a Rust exception) has no importable base
        raise PortError(f"checkpoint={str(path)!r} is not a safetensors file ({e})") from None


def read_pth(path):
    """Reads a PyTorch state dict (`.pth`); needs PyTorch."""
    try:
        import torch  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise PortError(
            f"reading checkpoint={str(path)!r} (.pth) needs PyTorch: "
            f"{_EXTRA}, or pass a .safetensors "
            "export of the state dict, which needs no PyTorch") from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(
            state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise PortError(f"checkpoint={str(path)!r} holds a "
                        f"{type(state).__name__}, not a state dict")
    return {k: v.detach().float().numpy() if v.is_floating_point()
            else v.numpy() for k, v in state.items()}


def read_checkpoint(path):
    """A torchvision checkpoint (`.pth`/`.pt` or `.safetensors`) as NumPy."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise PortError(f"checkpoint={str(path)!r} does not exist")
    if path.suffix == ".safetensors":
        state = read_safetensors(path)
    elif path.suffix in (".pth", ".pt", ".bin"):
        state = read_pth(path)
    else:
        raise PortError(f"checkpoint={str(path)!r} must end in .pth, .pt or "
                        ".safetensors")
    if state and all(k.startswith("module.") for k in state):  # DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def torchvision_names():
    """Keras layer name -> torchvision module prefix, for every conv and BN."""
    names = {"stem_conv": "conv1", "stem_bn": "bn1"}
    for stage, (_, blocks) in enumerate(resnet34.STAGES, start=1):
        for block in range(blocks):
            k = f"stack{stage}_block{block + 1}"
            t = f"layer{stage}.{block}"
            for i in (1, 2):
                names[f"{k}_conv{i}"] = f"{t}.conv{i}"
                names[f"{k}_bn{i}"] = f"{t}.bn{i}"
            if stage > 1 and block == 0:
                names[f"{k}_proj_conv"] = f"{t}.downsample.0"
                names[f"{k}_proj_bn"] = f"{t}.downsample.1"
    return names


def _expected(encoder):
    """{torch key: (Keras variable, torch shape)} for the whole encoder."""
    expected = {}
    for keras_name, torch_name in torchvision_names().items():
        layer = encoder.get_layer(keras_name)
        if isinstance(layer, keras.layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            expected[f"{torch_name}.weight"] = (layer.kernel,
                                                (cout, cin, kh, kw))
        else:
            for field, variable in (
                    ("weight", layer.gamma), ("bias", layer.beta),
                    ("running_mean", layer.moving_mean),
                    ("running_var", layer.moving_variance)):
                expected[f"{torch_name}.{field}"] = (variable,
                                                     tuple(variable.shape))
    return expected


def _is_ignored(key):
    return key in IGNORED_KEYS or key.endswith(IGNORED_SUFFIXES)


def _listing(keys, limit=12):
    keys = sorted(keys)
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def assign_state_dict(encoder, state, source="checkpoint"):
    """Copies a torchvision ResNet34 state dict into `encoder`.

    Every problem is collected first (missing tensors, extra tensors, wrong
    shapes) and raised together as `PortError`; no weight is assigned
    unless the whole state dict matches.

    Returns:
      number of tensors copied.
    """
    if getattr(encoder, "width", 1.0) != 1.0:
        raise PortError(
            f"the ImageNet ResNet34 port needs width=1.0, got "
            f"width={encoder.width!r}")
    expected = _expected(encoder)
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected and not _is_ignored(k)]
    wrong = []
    for key, (_, shape) in expected.items():
        if key in state and tuple(np.shape(state[key])) != shape:
            wrong.append(f"{key} {tuple(np.shape(state[key]))} "
                         f"(expected {shape})")
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensor(s): {_listing(missing)}")
    if extra:
        problems.append(f"{len(extra)} unexpected tensor(s): {_listing(extra)}")
    if wrong:
        problems.append(f"{len(wrong)} tensor(s) with the wrong shape: "
                        f"{_listing(wrong)}")
    if problems:
        raise PortError(f"{source} is not a torchvision ResNet34 state dict: "
                        + "; ".join(problems))
    for key, (variable, _) in expected.items():
        value = np.asarray(state[key], dtype=np.float32)
        if value.ndim == 4:  # (out, in, kh, kw) -> (kh, kw, in, out)
            value = value.transpose(2, 3, 1, 0)
        variable.assign(value)
    return len(expected)


def port_resnet34(checkpoint, output):
    """Reads a torchvision ResNet34 checkpoint and writes encoder weights.

    Args:
      checkpoint: `resnet34-*.pth` (needs PyTorch) or a `.safetensors`
        export of the same state dict.
      output: path ending in `.weights.h5`; written under a temporary name
        (:func:`keras_colorize.fileio.atomic_path`) and renamed only when complete.

    Returns:
      number of tensors ported.
    """
    output = pathlib.Path(output)
    if not output.name.endswith(".weights.h5"):
        raise ValueError(
            f"output must end in .weights.h5, got output={str(output)!r}")
    if output.parent.exists() and not output.parent.is_dir():
        raise ValueError(f"output's parent is not a directory: "
                         f"output={str(output)!r}")
    state = read_checkpoint(checkpoint)
    encoder = resnet34.ResNet34Encoder(width=1.0)
    count = assign_state_dict(encoder, state, source=f"checkpoint={str(checkpoint)!r}")
    # The folder is created only once the checkpoint has been read and checked.
    with fileio.atomic_path(output, keep_suffix=".weights.h5") as tmp:
        encoder.save_weights(str(tmp))  # Keras wants the name to end in .weights.h5
    return count
