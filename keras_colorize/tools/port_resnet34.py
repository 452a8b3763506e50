r"""Ports torchvision's ImageNet ResNet34 checkpoint to Keras encoder weights.

    kc-port-resnet34 \
        --checkpoint=resnet34-b627a593.pth \
        --output=resnet34_imagenet.weights.h5

`--checkpoint` is torchvision's `resnet34-*.pth` (reading it needs PyTorch:
`pip install 'keras_colorize[torch]'`) or a `.safetensors` export of the same
state dict (read with the `safetensors` package, same extra; no PyTorch
needed). The output loads into a width-1.0 colorizer with
`keras_colorize.models.load_encoder_weights`. Missing, extra or misshaped
tensors stop the port with a message naming them; nothing is written then.
The library behind it is :mod:`keras_colorize.models.torchvision_port`.

Exit status: 0 written; 2 bad arguments or checkpoint (a missing flag, an
unreadable checkpoint, missing/extra/misshaped tensors, PyTorch or safetensors
not installed: the ``[torch]`` extra), as one line ``kc-port-resnet34: error: ...``.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # pylint: disable=wrong-import-position

from keras_colorize import cli  # pylint: disable=wrong-import-position

_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None,
    "torchvision resnet34-*.pth, or a .safetensors export of its state dict.")
_OUTPUT = flags.DEFINE_string(
    "output", "resnet34_imagenet.weights.h5",
    "Keras weights file to write (must end in .weights.h5).")


def main(argv):
    cli.check_args(argv, required=("checkpoint", "output"))
    from keras_colorize.models import torchvision_port  # pylint: disable=import-outside-toplevel

    count = torchvision_port.port_resnet34(_CHECKPOINT.value, _OUTPUT.value)  # PortError: cli.run exits 2
    print(f"ported {count} tensors from {_CHECKPOINT.value} to {_OUTPUT.value}")
    return 0


def run():
    """Console-script entry point (``kc-port-resnet34``); exit status 0 or 2 as above."""
    cli.run(main, "kc-port-resnet34")


if __name__ == "__main__":
    run()
