r"""Ports torchvision's ImageNet ResNet34 checkpoint to Keras encoder weights.

    python -m keras_colorize.tools.port_resnet34 \
        --checkpoint=resnet34-b627a593.pth \
        --output=resnet34_imagenet.weights.h5

`--checkpoint` is torchvision's `resnet34-*.pth` (reading it needs PyTorch:
`pip install 'keras_colorize[torch]'`) or a `.safetensors` export of the same
state dict (no PyTorch needed). The output loads into a width-1.0 colorizer
with `keras_colorize.models.load_encoder_weights`. Missing, extra or
misshaped tensors stop the port with a message naming them; nothing is
written then.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # pylint: disable=wrong-import-position
from absl import flags  # pylint: disable=wrong-import-position

_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None,
    "torchvision resnet34-*.pth, or a .safetensors export of its state dict.")
_OUTPUT = flags.DEFINE_string(
    "output", "resnet34_imagenet.weights.h5",
    "Keras weights file to write (must end in .weights.h5).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from keras_colorize.models import torchvision_port  # pylint: disable=import-outside-toplevel
    try:
        count = torchvision_port.port_resnet34(_CHECKPOINT.value, _OUTPUT.value)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    print(f"ported {count} tensors from {_CHECKPOINT.value} to {_OUTPUT.value}")


def run():
    flags.mark_flag_as_required("checkpoint")
    app.run(main)


if __name__ == "__main__":
    run()
