"""The layout of a guided model's extra inputs, shared by the model, data, commands and exporters.

A guided model (``hints=True`` in its config) takes, besides ``"L"``:

* ``"hints"`` ``(B, S, S, HINT_CHANNELS)`` on the model's grid: a*/HINT_AB_SCALE,
  b*/HINT_AB_SCALE at hinted pixels (0 elsewhere) and a mask channel (1 where a hint
  is given), so a gray hint (a*b* = 0) differs from no hint (Zhang et al. 2017, Sec. 3.1);
* ``"reference"`` ``(B, REFERENCE_SIZE)``: the a*b* histogram of a reference photo over
  the project's in-gamut a*b* bins (:func:`keras_colorize.models.ab_bins.bin_centers`, grid 10),
  normalized to sum 1, followed by a "given" flag; all zeros when no reference is given.

Plain constants (no TensorFlow ops): the backend-agnostic model code imports them.
"""

from keras_colorize.models import ab_bins

#: Channels of the "hints" input: a*, b*, mask.
HINT_CHANNELS = 3
#: a*b* of a hint are divided by this (|a*|, |b*| < 128, so the hint lies in (-1, 1)).
HINT_AB_SCALE = 128.0
#: a*b* bins of the reference histogram (the project's Q = 261 in-gamut bins).
NUM_REFERENCE_BINS = len(ab_bins.bin_centers())
#: Length of the "reference" input: the histogram and the "given" flag.
REFERENCE_SIZE = NUM_REFERENCE_BINS + 1
#: Patch side of one hint point, in model-grid pixels.
MIN_PATCH, MAX_PATCH, DEFAULT_PATCH = 1, 9, 3
#: Input names of a guided model.
L_INPUT, HINTS_INPUT, REFERENCE_INPUT = "L", "hints", "reference"
