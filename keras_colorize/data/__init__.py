"""Data: Places365 (or any folder) to TFRecord shards, the tf.data pipeline, built-in demo data.

* :mod:`~keras_colorize.data.features`: TFRecord keys, defined once.
* :mod:`~keras_colorize.data.places365`: source layouts, class lists, the paper's split.
* :mod:`~keras_colorize.data.shards_lib` / ``make_shards``: the shards job, its summaries, and its CLI;
  :mod:`~keras_colorize.data.photo_repair` (one photo), :mod:`~keras_colorize.data.shard_writer` (writing).
* :mod:`~keras_colorize.data.preprocess`: pure preprocessing ops.
* :mod:`~keras_colorize.data.pipeline`: ``make_dataset`` -> ``(L, {"ab", "class"})`` batches.
* :mod:`~keras_colorize.data.demo`: synthetic landscapes, ``ensure_demo_shards``.
"""
