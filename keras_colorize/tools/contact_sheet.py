r"""A contact sheet: every photo of a folder beside its full-resolution colorization.

    kc-contact-sheet --input=photos/bw \
      --output=bw_contact_sheet.jpg --colorized_dir=bw_colorized

(or ``python -m keras_colorize.tools.contact_sheet``)

Each photo is colorized at its own full resolution (the model sees a resized
L* view; its a*b* is upsampled onto the original L*, see
:class:`keras_colorize.inference.api.Colorizer`), optionally saved in full to
``--colorized_dir``, and shown on the sheet as a pair of thumbnails (input,
colorized) with its file name. The sheet is written atomically.

With ``--hints_dir`` (a guided model), every photo that has a hint sidecar
there (``<photo>.hints.json``, the format of ``kc-colorize``) gets a third
thumbnail, colorized with those hints, with the hint points drawn on it as
small rings; photos without a sidecar keep their pair.

Exit status: 0 written; 2 bad arguments or configuration (a missing flag, no
such folder, no images in it, an output that is not .jpg/.png, a model that
is missing or not a colorizer), as one line ``kc-contact-sheet: error: ...``.
"""

import pathlib

from absl import flags
from PIL import Image, ImageDraw, ImageFont

from keras_colorize import cli
from keras_colorize.inference import images




def _define_flags():
    """Defines the command's flags (only when run as a command, so importing the library
    functions never clashes with another command's flags in the same process)."""
    flags.DEFINE_string("input", None, "Folder of photographs (not recursive).")
    flags.DEFINE_string("output", None, "Contact sheet file (.jpg or .png).")
    flags.DEFINE_string("model", "scenes", "Bundled model name or model path.")
    flags.DEFINE_string("colorized_dir", "", "If set, also save each full-resolution colorization here.")
    flags.DEFINE_integer("thumb", 360, "Thumbnail height in pixels.")
    flags.DEFINE_integer("columns", 3, "Pairs per row.")
    flags.DEFINE_string("hints_dir", "", "Folder of hint sidecars (<photo>.hints.json): photos with one also "
                        "show their colorization with those hints (guided models).")


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
    """Lays out ``[(name, input PIL image, colorized PIL image, ...)]`` as one RGB sheet.

    Each entry is one cell: the input and its colorizations side by side (two or more thumbnails).
    """
    cells = []
    for name, original, *colorized in pairs:
        thumbs = [_thumb(image.convert("RGB"), thumb) for image in (original, *colorized)]
        cell = Image.new("RGB", (sum(t.width for t in thumbs) + pad * (len(thumbs) - 1), thumb + caption_height),
                         (24, 24, 24))
        x = 0
        for image in thumbs:
            cell.paste(image, (x, caption_height))
            x += image.width + pad
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


def _mark_points(image, hints):
    """A copy of ``image`` with each hint point drawn as a ring in its own colour (white outline)."""
    from keras_colorize.guidance import hint_file  # noqa: PLC0415

    marked = image.convert("RGB")
    draw = ImageDraw.Draw(marked)
    radius = max(6, round(min(marked.size) / 60))
    for point in hints.points:
        x, y = point.pixels(marked.width, marked.height)
        box = [x - radius, y - radius, x + radius, y + radius]
        draw.ellipse(box, outline=(255, 255, 255), width=max(2, radius // 3))
        draw.ellipse([c + (1 if i < 2 else -1) * max(2, radius // 3) for i, c in enumerate(box)],
                     outline=hint_file.point_hex(point), width=max(2, radius // 3))
    return marked


def run(input_dir, output, model="scenes", colorized_dir="", thumb=360, columns=3, progress=True, hints_dir=""):
    """Colorizes every photo of ``input_dir`` and writes the sheet; returns the number of photos."""
    from tqdm import tqdm  # noqa: PLC0415

    from keras_colorize import fileio  # noqa: PLC0415
    from keras_colorize.guidance import hint_file  # noqa: PLC0415
    from keras_colorize.inference import api  # noqa: PLC0415

    folder = pathlib.Path(input_dir)
    if not folder.is_dir():
        raise ValueError(f"input={input_dir!r} is not an existing folder")
    if pathlib.Path(output).suffix.lower() not in (".jpg", ".jpeg", ".png"):
        raise ValueError(f"output={output!r} must end in .jpg, .jpeg or .png")
    files = sorted(p for p in folder.iterdir() if images.is_image_path(p) and not p.name.startswith("."))
    if not files:
        raise ValueError(f"input={input_dir!r} holds no images")
    if hints_dir and not pathlib.Path(hints_dir).is_dir():
        raise ValueError(f"hints_dir={hints_dir!r} is not an existing folder")
    colorizer = api.Colorizer(model, batch_size=1)
    sidecars = {p: hint_file.sidecar_path(p, folder, hints_dir) for p in files} if hints_dir else {}
    sidecars = {p: s for p, s in sidecars.items() if s.is_file()}
    if sidecars and not colorizer.guided:
        raise ValueError(hint_file.no_hint_inputs_message(model))
    pairs = []
    for path in tqdm(files, desc="colorizing", unit="photo", disable=not progress):
        with Image.open(path) as original:
            original.load()
            colorized = [colorizer.colorize(original)]
            if path in sidecars:
                hints = hint_file.Hints.load(sidecars[path])
                colorized.append(_mark_points(colorizer.colorize(original, hints=hints), hints))
            if colorized_dir:
                for suffix, image in zip(("", ".hinted"), colorized):
                    target = pathlib.Path(colorized_dir) / (path.stem + suffix + ".png")
                    with fileio.atomic_path(target) as tmp:
                        image.save(tmp, format="PNG")
            pairs.append((path.name, original.copy(), *colorized))
    sheet = make_sheet(pairs, thumb=thumb, columns=columns)
    with fileio.atomic_path(output) as tmp:
        sheet.save(tmp, format="PNG" if output.lower().endswith(".png") else "JPEG", quality=90)
    return len(pairs)


def main(argv):
    cli.check_args(argv, required=("input", "output"))
    flag_values = flags.FLAGS
    count = run(flag_values.input, flag_values.output, flag_values.model, flag_values.colorized_dir,
                flag_values.thumb, flag_values.columns, hints_dir=flag_values.hints_dir)  # ValueError: cli.run exits 2
    print(f"wrote {flag_values.output}: {count} photos")
    return 0


def command():
    """Console-script entry point (``kc-contact-sheet``; :func:`run` is the library function)."""
    _define_flags()
    cli.run(main, "kc-contact-sheet")


if __name__ == "__main__":
    command()
