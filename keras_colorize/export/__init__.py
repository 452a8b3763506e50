"""Deployment: a SavedModel TF Serving serves as it is, and TFLite models for LiteRT.

Where to look:

* ``saved_model.py``   signatures (``serving_default`` on encoded images, ``colorize_l`` on L tensors),
                       atomic ``<base>/<name>/<version>`` writing
* ``image_ops.py``     the in-graph decode / pixel limit / full-resolution merge / encode
* ``bn_folding.py``    BatchNormalization folded into conv/Dense kernels (needed for TFLite)
* ``tflite.py``        float32, float16, dynamic-range int8, full-integer int8 conversion
* ``tflite_report.py`` size, LiteRT latency and quality per variant
* ``litert_runner.py`` run a ``.tflite`` file on images (CLI and Python)
* ``serving_client.py`` REST / gRPC client for a running TF Serving
* ``export_lib.py``    what ``export/export_saved_model.py`` and ``export/export_tflite.py`` run

Submodules are imported explicitly (``from keras_colorize.export import saved_model``) so that
importing the package loads neither LiteRT nor the serving APIs.
"""
