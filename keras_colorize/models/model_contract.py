"""What a colorizer model must look like, checked once, before any image is read.

The contract (paper Table 1, ``keras_colorize.models.build_colorizer``):

* one input ``L``: float, shape ``(batch, S, S, 1)`` with a fixed square side
  ``S`` that is a multiple of 32 (the ResNet34 encoder downsamples 32x);
* an a*b* output of shape ``(batch, S, S, 2)``: the ``"ab"`` entry of a dict
  output, or the model's only output;
* optionally a ``"class"`` output ``(batch, C)`` (the scene head);
* a guided model (``hints=True``) takes a dict of three inputs: ``L`` as above,
  ``hints`` ``(batch, S, S, 3)`` and ``reference`` ``(batch, R)``
  (:mod:`keras_colorize.guidance.spec`).

:func:`check_model_contract` checks a ``keras.Model``;
:func:`check_signature` a SavedModel signature (a concrete function).
``keras_colorize.inference.api.load_predictor`` calls them for every command that
loads a model (``colorize``, ``colorize_video``, ``evaluate``); the
exporters call :func:`check_model_contract` through
``keras_colorize.export.saved_model.model_geometry``.

Example::

    contract = check_model_contract(model)   # ValueError naming what is wrong
    contract.image_size, contract.ab_key, contract.num_classes   # 256, "ab", 137
"""

import dataclasses

#: The encoder's total stride: the input side must be a multiple of it.
STRIDE = 32


@dataclasses.dataclass(frozen=True)
class Contract:
    """What the checks found.

    Attributes:
      image_size: the input side S.
      ab_key: the key of the a*b* output in a dict output, or None when the
        model's only output is a*b*.
      num_classes: classes of the ``"class"`` output, or None.
      batch_size: a fixed batch dimension (SavedModels may have one), or None.
      guided: the model takes the "hints" and "reference" inputs.
    """

    image_size: int
    ab_key: str | None
    num_classes: int | None = None
    batch_size: int | None = None
    guided: bool = False


def _shape(tensor):
    shape = getattr(tensor, "shape", None)
    if shape is None:
        return None
    try:
        return tuple(None if d is None else int(d) for d in shape)
    except TypeError:  # a tf.TensorShape of unknown rank
        return None


def _is_float(dtype):
    name = getattr(dtype, "name", dtype)
    return "float" in str(name)


def _check_input(shape, dtype, fixed_batch_ok):
    """The input side S (and a fixed batch or None); ValueError naming the problem."""
    if shape is None or len(shape) != 4 or shape[3] != 1:
        raise ValueError(f"input must be (batch, S, S, 1) L*, got shape {shape}")
    if shape[1] is None or shape[1] != shape[2]:
        raise ValueError(f"input must be a fixed square (batch, S, S, 1), got shape {shape}")
    if shape[1] % STRIDE:
        raise ValueError(f"input side must be a multiple of {STRIDE} (the encoder's stride), got shape {shape}")
    if not _is_float(dtype):
        raise ValueError(f"input must be float (L*/100), got dtype {getattr(dtype, 'name', dtype)}")
    if shape[0] is not None and not fixed_batch_ok:
        raise ValueError(f"input must have a free batch dimension (None, S, S, 1), got shape {shape}")
    return shape[1], shape[0]


def _ab_output(outputs, size):
    """``(ab_key or None)`` of ``outputs`` (dict or list of tensors/specs); ValueError if there is none."""
    want = (size, size, 2)
    if isinstance(outputs, dict):
        shapes = {str(k): _shape(v) for k, v in outputs.items()}
        if "ab" in shapes:
            if shapes["ab"] is None or shapes["ab"][1:] != want:
                raise ValueError(f"output 'ab' must be (batch, {size}, {size}, 2), got shape {shapes['ab']}")
            return "ab"
        candidates = [k for k, shape in shapes.items() if shape is not None and shape[1:] == want]
        if len(candidates) == 1:  # e.g. a SavedModel's "output_0" beside the class probabilities
            return candidates[0]
        raise ValueError(f"outputs must include 'ab' of shape (batch, {size}, {size}, 2), got {shapes}")
    outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    shapes = [_shape(o) for o in outputs]
    if len(shapes) == 1 and shapes[0] is not None and shapes[0][1:] == want:
        return None
    raise ValueError(f"output must be a*b* of shape (batch, {size}, {size}, 2) (a dict with 'ab' or a single "
                     f"2-channel output), got output shape{'s' if len(shapes) != 1 else ''} "
                     f"{shapes if len(shapes) != 1 else shapes[0]}")


def _num_classes(outputs):
    if isinstance(outputs, dict) and "class" in outputs:
        shape = _shape(outputs["class"])
        if shape and len(shape) == 2 and shape[1]:
            return shape[1]
    return None


def check_model_contract(model):
    """Checks a ``keras.Model`` against the contract; returns its :class:`Contract`.

    Raises:
      ValueError: ``model does not fit the colorizer contract: <what>``.
    """
    try:
        inputs = list(model.inputs)
        guided = len(inputs) == 3
        if guided:
            size = _check_guided_inputs(model)
        elif len(inputs) != 1:
            raise ValueError(f"must have one input (L), or three (L, hints, reference) for a guided model, "
                             f"got {len(inputs)}")
        else:
            size, _ = _check_input(_shape(inputs[0]), inputs[0].dtype, fixed_batch_ok=False)
        outputs = model.output
        if isinstance(outputs, (list, tuple)) and len(outputs) != 1:
            outputs = list(model.outputs)
        ab_key = _ab_output(outputs, size)
    except (AttributeError, ValueError) as e:
        raise ValueError(f"model does not fit the colorizer contract: {e}") from e
    return Contract(size, ab_key, _num_classes(outputs), guided=guided)


def _check_guided_inputs(model):
    """The input side S of a guided model (inputs L, hints, reference); ValueError naming what is wrong."""
    from keras_colorize.guidance import spec  # noqa: PLC0415 - the layout of the guided inputs

    named = model.input if isinstance(model.input, dict) else {}
    if sorted(named) != sorted((spec.L_INPUT, spec.HINTS_INPUT, spec.REFERENCE_INPUT)):
        raise ValueError(f"a model with three inputs must name them {spec.L_INPUT!r}, {spec.HINTS_INPUT!r} and "
                         f"{spec.REFERENCE_INPUT!r}, got {sorted(named) or 'unnamed inputs'}")
    size, _ = _check_input(_shape(named[spec.L_INPUT]), named[spec.L_INPUT].dtype, fixed_batch_ok=False)
    hints = _shape(named[spec.HINTS_INPUT])
    if hints is None or hints[1:] != (size, size, spec.HINT_CHANNELS):
        raise ValueError(f"input {spec.HINTS_INPUT!r} must be (batch, {size}, {size}, {spec.HINT_CHANNELS}), "
                         f"got shape {hints}")
    reference = _shape(named[spec.REFERENCE_INPUT])
    if reference is None or reference[1:] != (spec.REFERENCE_SIZE,):
        raise ValueError(f"input {spec.REFERENCE_INPUT!r} must be (batch, {spec.REFERENCE_SIZE}), got shape "
                         f"{reference}")
    return size


def check_signature(fn):
    """Checks a SavedModel signature (one float ``(B, S, S, 1)`` input); returns its :class:`Contract`.

    Raises:
      ValueError: what does not fit (without naming the signature; the caller does).
    """
    specs = fn.structured_input_signature[1]
    if len(specs) != 1 or fn.structured_input_signature[0]:
        raise ValueError(f"must take one L tensor, takes {sorted(specs)}")
    (spec,) = specs.values()
    size, batch = _check_input(_shape(spec), spec.dtype, fixed_batch_ok=True)
    outputs = fn.structured_outputs
    if not isinstance(outputs, dict):
        outputs = {"output_0": outputs}
    ab_key = _ab_output(outputs, size)
    if ab_key is None:  # unreachable for dicts; keeps the return type honest
        raise ValueError("has no a*b* output")
    return Contract(size, ab_key, _num_classes(outputs), batch)
