"""Guided colorization: colour hints and a reference photo that steer a model (Zhang et al. 2017, adapted).

* :mod:`keras_colorize.guidance.spec`: the model inputs' layout (no TensorFlow).
* :mod:`keras_colorize.guidance.hint_ops`: painting hints, reference histograms and the
  simulated hints of training and evaluation (TensorFlow ops).
* :mod:`keras_colorize.guidance.hint_file`: the JSON hint file every command reads.
"""
