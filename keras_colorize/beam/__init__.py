"""Apache Beam pipelines: the two jobs that outgrow one machine (``pip install 'keras_colorize[beam]'``).

* Shards (:mod:`keras_colorize.beam.shards`, command ``kc-beam-shards``):
  the shards of ``kc-make-shards``, record for record, written by Beam workers.
* Archive colorization (:mod:`keras_colorize.beam.archive`, command
  ``kc-beam-colorize``): the outputs of ``kc-colorize`` (byte for byte with
  ``batch_size=1``; else the network's output is within one level on a few
  values in a million, and a JPEG's bytes may then differ: docs/beam.md),
  with the model run through ``RunInference``
  (:class:`keras_colorize.beam.model_handler.ColorizerModelHandler`).

Both reuse the local tools' code (listing, cleaning, encoding, the Example,
reading and writing photos) and add only what distribution needs: file
systems other than the local one (:mod:`keras_colorize.beam.files`) and the
pipeline options (:mod:`keras_colorize.beam.options`). How to run them on
Dataflow, Flink and Spark: ``docs/beam.md`` (only the DirectRunner is run
in this project's tests).

Importing this package does not import Beam; its modules do.
"""
