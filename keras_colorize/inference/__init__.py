"""Inference: colorizing photos and film with a trained model.

    api.py       Colorizer: load a model (a bundled name, .keras or SavedModel), colorize images
    photos.py    folders of photos, resumable, mirrored tree (`python -m keras_colorize.colorize`)
    film.py      film and video (`python -m keras_colorize.colorize_video`); film_io.py PyAV files,
                 film_smoothing.py temporal chroma smoothing
    model_spec.py  which models a command accepts (a bundled name or a path)
    images.py    reading and writing image files (EXIF orientation, ICC profiles, 16-bit, multi-page)
    merge.py     full-resolution merge of the network's a*b* with the photo's own L*
    batching.py  batched(): a stream of items cut into network batches (photos, film, evaluation)
"""
