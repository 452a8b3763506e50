"""Streams cut into network batches: full batches as they fill, then the tail.

Photos (:mod:`keras_colorize.inference.photos`), film frames
(:mod:`keras_colorize.inference.film`) and evaluation views
(:mod:`keras_colorize.evaluation.evaluator`) all arrive one at a time and go
through the network ``batch_size`` at a time. The accumulate / flush when
full / flush the tail loop lives here once. Pure Python, no TensorFlow, so
the film and photo paths import it before any model is loaded.
"""


def batched(items, size):
    """Yields lists of ``size`` consecutive items of ``items``, the last one shorter if needed.

    Lazy: an item is read only when the batch it belongs to is being
    filled, so a slow source (a decoder, a read-ahead queue) is never
    drained ahead of the network. An empty ``items`` yields nothing.
    (``itertools.batched`` of Python 3.12, which yields tuples; the package
    supports 3.11.)

    Args:
      items: any iterable.
      size: batch size, a positive int.

    Raises:
      ValueError: ``size`` is not a positive int (raised at the first ``next``).

    Example:
      >>> list(batched(range(5), 2))
      [[0, 1], [2, 3], [4]]
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
