"""The ``RunInference`` model handler of the archive pipeline: a keras_colorize ``Colorizer`` per worker.

``apache_beam.ml.inference.base.RunInference`` loads the model once per
worker process (Beam's shared handle) and hands it batches of decoded photos;
:class:`ColorizerModelHandler` colorizes each batch with the code path of
``kc-colorize`` (:func:`keras_colorize.inference.photos._colorize_batch`: all
pages of all photos through the network ``batch_size`` at a time, a photo
that fails is isolated and reported, the others go on).

Every network call gets exactly ``batch_size`` images: a short batch is
filled with tiny blank pictures whose results are dropped. On CPU the
network's result for a photo differs in the last float bits with the number
of images in the call and with the photo's place among them (oneDNN blocks
the work differently), which moves a few output pixels by one level; the
filling removes the first of the two, so a bundle's last, short batch is not
computed differently from the others. The place in a batch cannot be fixed
without giving up batching, so outputs equal ``kc-colorize``'s byte for byte
with ``batch_size=1`` (both compute each photo alone) and otherwise within
one level per pixel value, on a few pixels in a million
(``tests/test_beam.py`` pins both).

The model may be a bundled name (``scenes``, installed with the package on
every worker), a path every worker sees, or a URL (``gs://bucket/model.keras``,
or a SavedModel folder), which each worker copies to a local temporary
folder before loading.

Example::

    from apache_beam.ml.inference.base import RunInference
    results = items | RunInference(ColorizerModelHandler("scenes", batch_size=4))
"""

import os
import tempfile

import numpy as np
from apache_beam.ml.inference.base import ModelHandler
from apache_beam.ml.inference.base import PredictionResult

from keras_colorize.beam import files
from keras_colorize.inference import images
from keras_colorize.inference import photos

# A stand-in page that fills a short batch: tiny, so its full-resolution merge costs nothing.
_BLANK_PIXELS = (8, 8, 1)


def localize_model(spec):
    """A local path (or bundled name) for ``spec``; a URL is copied to a temporary folder first.

    A URL naming one object (``.keras``/``.h5``) is copied as a file; otherwise
    it is taken as a SavedModel folder and everything under it is copied.
    """
    spec = os.fspath(spec)
    if files.is_local(spec):
        return spec
    local_root = tempfile.mkdtemp(prefix="kc-model-")
    if files.match(spec, limit=1) == [spec]:
        return files.download(spec, os.path.join(local_root, files.basename(spec)))
    folder = spec.rstrip("/")
    found = files.match(folder + "/**")
    if not found:
        raise ValueError(f"model {spec!r}: no such file, and no SavedModel folder there")
    local_folder = os.path.join(local_root, files.basename(folder))
    for path in found:
        target = os.path.join(local_folder, *path[len(folder) + 1:].split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        files.download(path, target)
    return local_folder


class GuidanceError(ValueError):
    """A photo's hints that cannot be used (a bad sidecar, a point outside the photo, an unguided model)."""


def load_hints(hints):
    """A job's hints as :func:`photos._guidance` takes them: a local sidecar path as is; a URL's loaded.

    A URL sidecar (``gs://...``) is copied to a local temporary file of the
    same name and loaded with ``kc-colorize``'s own :meth:`hint_file.Hints.load`
    (same strict JSON, size limit, checks and messages, the temporary folder
    named by the URL's folder in them). A ``reference`` photo the sidecar
    names by a relative path is not found that way: references of sidecars
    need a file system the workers see as local (docs/beam.md).
    """
    if hints is None or files.is_local(str(hints)):
        return hints
    from keras_colorize.guidance import hint_file  # noqa: PLC0415

    url = str(hints)
    with tempfile.TemporaryDirectory(prefix="kc-hints-") as tmp:
        local = os.path.join(tmp, files.basename(url))
        try:
            files.download(url, local)
        except Exception as e:  # noqa: BLE001 - BeamIOError, a cloud client's errors: this photo fails
            raise hint_file.HintFileError(f"hints file {url!r}: cannot read it ({type(e).__name__}: {e})") from None
        try:
            return hint_file.Hints.load(local)
        except ValueError as e:
            raise hint_file.HintFileError(str(e).replace(tmp, files.dirname(url))) from None


class ColorizerModelHandler(ModelHandler):
    """Colorizes photos in ``RunInference``.

    Examples are ``(job, picture, pages, image_format)`` tuples, as
    ``kc-colorize`` batches them (:mod:`keras_colorize.inference.photos`):
    ``pages`` the :class:`keras_colorize.inference.images.Picture` pages to
    colorize (one, or every page of a multi-page TIFF written as TIFF).
    The job's ``hints`` (its sidecar, or None) and ``reference`` become the
    guided model's inputs as in ``kc-colorize`` (:func:`photos._guidance`).
    Each :class:`PredictionResult` carries ``(job, picture, pages,
    image_format, guidance)`` and either the list of ``(rgb, alpha)`` pages,
    the exception the network raised for this photo, or a
    :class:`GuidanceError` (its hints cannot be used; the message is the reason).

    Args:
      model: bundled model name, local path or URL (see :func:`localize_model`).
      batch_size: images per network call (every call is filled to this size).
      reference: the ``(R,)`` reference input for every photo whose hints name
        none (``kc-colorize --reference``), or None.
    """

    def __init__(self, model, batch_size=4, reference=None):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        super().__init__(min_batch_size=batch_size, max_batch_size=batch_size)
        self._model = os.fspath(model)
        self._batch_size = batch_size
        self._reference = None if reference is None else np.asarray(reference, np.float32)

    def load_model(self):
        """Loads the model (once per worker process: RunInference shares it between threads)."""
        from keras_colorize.inference.api import Colorizer  # noqa: PLC0415 - TensorFlow on the worker only

        return Colorizer.from_path(localize_model(self._model), batch_size=self._batch_size)

    def run_inference(self, batch, model, inference_args=None):
        """Yields one ``PredictionResult(example, [(rgb, alpha), ...] or exception)`` per example, in order."""
        items = []
        for job, picture, pages, image_format in batch:
            try:
                guidance = photos._guidance(model, load_hints(job.hints), pages, self._reference)  # noqa: SLF001
            except ValueError as e:  # as kc-colorize: this photo fails with the reason, the others go on
                yield PredictionResult(example=(job, picture, pages, image_format, None),
                                       inference=GuidanceError(" ".join(str(e).split())))
                continue
            items.append((job, picture, pages, image_format, guidance))
        pages = sum(len(item[2]) for item in items)
        blank = images.Picture(pixels=np.zeros(_BLANK_PIXELS, np.uint8))
        filler = [(None, blank, [blank], None, None)] * (-pages % model.batch_size)
        for item, result in photos._colorize_batch(model, items + filler):  # noqa: SLF001 - kc-colorize's own
            if item[0] is not None:
                yield PredictionResult(example=item, inference=result)

    def get_num_bytes(self, batch):
        """Bytes of the decoded pages (the default would pickle every full-resolution photo to count them)."""
        return sum(page.pixels.nbytes for item in batch for page in item[2])

    def get_metrics_namespace(self):
        return "keras_colorize_inference"
