r"""A contact sheet: every photo of a folder beside its full-resolution colorization.

    kc-contact-sheet --input=photos/bw \
      --output=bw_contact_sheet.jpg --colorized_dir=bw_colorized

(or ``python -m keras_colorize.tools.contact_sheet``)

Each photo is colorized at its own full resolution (the model sees a resized
L* view; its a*b* is upsampled onto the original L*, see
:class:`keras_colorize.inference.api.Colorizer`), optionally saved in full to
``--colorized_dir``, and shown on the sheet as a pair of thumbnails (input,
colorized) with its file name. The sheet is written atomically.

Exit status: 0 written; 2 bad arguments or configuration (a missing flag, no
such folder, no images in it, an output that is not .jpg/.png, a model that
is missing or not a colorizer), as one line ``kc-contact-sheet: error: ...``.
"""

import pathlib

from absl import flags
from PIL import Image, ImageDraw, ImageFont

from keras_colorize import cli


_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


def _define_flags():
    """Defines the command's flags (only when run as a command, so importing the library
    functions never clashes with another command's flags in the same process)."""
    flags.DEFINE_string("input", None, "Folder of photographs (not recursive).")
    flags.DEFINE_string("output", None, "Contact sheet file (.jpg or .png).")
    flags.DEFINE_string("model", "scenes", "Bundled model name or model path.")
    flags.DEFINE_string("colorized_dir", "", "If set, also save each full-resolution colorization here.")
    flags.DEFINE_integer("thumb", 360, "Thumbnail height in pixels.")
    flags.DEFINE_integer("columns", 3, "Pairs per row.")


def _font(size):
    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default()


def _thumb(image, height):
    width = max(1, round(image.width * height / image.height))
    return image.resize((width, height), Image.Resampling.LANCZOS)


def make_sheet(pairs, thumb=360, columns=3, caption_height=28, pad=12):
    """Lays out ``[(name, input PIL image, colorized PIL image)]`` as one RGB sheet."""
    cells = []
    for name, original, colorized in pairs:
        a = _thumb(original.convert("RGB"), thumb)
        b = _thumb(colorized.convert("RGB"), thumb)
        cell = Image.new("RGB", (a.width + b.width + pad, thumb + caption_height), (24, 24, 24))
        cell.paste(a, (0, caption_height))
        cell.paste(b, (a.width + pad, caption_height))
        ImageDraw.Draw(cell).text((2, 4), f"{name}  ({original.width}x{original.height})", fill=(230, 230, 230),
                                  font=_font(16))
        cells.append(cell)
    rows = [cells[i:i + columns] for i in range(0, len(cells), columns)]
    width = max(sum(c.width for c in row) + pad * (len(row) + 1) for row in rows)
    height = sum(max(c.height for c in row) + pad for row in rows) + pad
    sheet = Image.new("RGB", (width, height), (16, 16, 16))
    y = pad
    for row in rows:
        x = pad
        for cell in row:
            sheet.paste(cell, (x, y))
            x += cell.width + pad
        y += max(c.height for c in row) + pad
    return sheet


def run(input_dir, output, model="scenes", colorized_dir="", thumb=360, columns=3, progress=True):
    """Colorizes every photo of ``input_dir`` and writes the sheet; returns the number of photos."""
    from tqdm import tqdm  # noqa: PLC0415

    from keras_colorize import fileio  # noqa: PLC0415
    from keras_colorize.inference import api  # noqa: PLC0415

    folder = pathlib.Path(input_dir)
    if not folder.is_dir():
        raise ValueError(f"input={input_dir!r} is not an existing folder")
    if pathlib.Path(output).suffix.lower() not in (".jpg", ".jpeg", ".png"):
        raise ValueError(f"output={output!r} must end in .jpg, .jpeg or .png")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise ValueError(f"input={input_dir!r} holds no images")
    colorizer = api.Colorizer(model, batch_size=1)
    pairs = []
    for path in tqdm(files, desc="colorizing", unit="photo", disable=not progress):
        with Image.open(path) as original:
            original.load()
            colorized = colorizer.colorize(original)
            if colorized_dir:
                target = pathlib.Path(colorized_dir) / (path.stem + ".png")
                with fileio.atomic_path(target) as tmp:
                    colorized.save(tmp, format="PNG")
            pairs.append((path.name, original.copy(), colorized))
    sheet = make_sheet(pairs, thumb=thumb, columns=columns)
    with fileio.atomic_path(output) as tmp:
        sheet.save(tmp, format="PNG" if output.lower().endswith(".png") else "JPEG", quality=90)
    return len(pairs)


def main(argv):
    cli.check_args(argv, required=("input", "output"))
    flag_values = flags.FLAGS
    count = run(flag_values.input, flag_values.output, flag_values.model, flag_values.colorized_dir,
                flag_values.thumb, flag_values.columns)  # ValueError: cli.run exits 2
    print(f"wrote {flag_values.output}: {count} photos")
    return 0


def command():
    """Console-script entry point (``kc-contact-sheet``; :func:`run` is the library function)."""
    _define_flags()
    cli.run(main, "kc-contact-sheet")


if __name__ == "__main__":
    command()
