"""keras_colorize: colorize grayscale landscape photographs and film.

Implements Zayd, Yudistira and Wihandika, "Image Colorization using U-Net with
Skip Connections and Fusion Layer on Landscape Images": a U-Net on an
ImageNet-pretrained ResNet34 encoder, a global branch with a Places365 scene
classification head, and an Iizuka et al. (2016) fusion layer.

Example::

    from keras_colorize import Colorizer
    colorizer = Colorizer("scenes")            # the bundled model (research and non-commercial use only)
    colorizer = Colorizer("runs/p1/best.keras")  # or any .keras file / SavedModel folder
    colorized = colorizer.colorize("scan.jpg")   # PIL.Image, same size as the input
"""

__version__ = "0.1.0"

__all__ = ["Colorizer", "__version__"]


def __getattr__(name):
    # Lazy, so `import keras_colorize` stays cheap (no TensorFlow import) for
    # tools such as the user-study server.
    if name == "Colorizer":
        from keras_colorize.inference.api import Colorizer

        return Colorizer
    raise AttributeError(f"module 'keras_colorize' has no attribute {name!r}")
