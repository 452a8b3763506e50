"""Deployment: a SavedModel TF Serving serves as it is, and TFLite models for LiteRT.

Where to look:

* ``saved_model.py``   signatures (``serving_default`` on encoded images, ``colorize_l`` on L tensors;
                       a guided model adds ``colorize_guided`` and ``colorize_l_guided``),
                       atomic ``<base>/<name>/<version>`` writing
* ``image_ops.py``     the in-graph decode / pixel limit / encode (the merge: ``inference/merge.py``),
                       and a guided request's hints -> model inputs
* ``bn_folding.py``    BatchNormalization folded into conv/Dense kernels (needed for TFLite)
* ``tflite.py``        float32, float16, dynamic-range int8, full-integer int8 conversion
* ``tflite_report.py`` size, LiteRT latency and quality per variant
* ``litert_runner.py`` run a ``.tflite`` file on images (Python, and the ``kc-litert`` command)
* ``serving_client.py`` REST / gRPC client for a running TF Serving (and ``kc-serving-client``)
* ``export_saved_model.py``, ``export_tflite.py`` the ``kc-export-saved-model`` / ``kc-export-tflite`` commands
                       (flags; ``export/*.py`` in a checkout are shells around them)
* ``export_lib.py``    what those two commands run: typed configs, model loading

Submodules are imported explicitly (``from keras_colorize.export import saved_model``) so that
importing the package loads neither LiteRT nor the serving APIs.
"""
