r"""Wall time of full-resolution colorization: one 12-megapixel photo and the test film clip.

    python benchmarks/inference_speed.py --presets=paper --output=runs/bench_inference.json

For each model preset (random weights: the time does not depend on them), it
measures

* ``photo_cold``: load the model, read a 4000x3000 JPEG, colorize, write the
  JPEG (what one ``kc-colorize`` call on one photo costs after Python and TF
  are imported, XLA compilation included);
* ``photo_warm``: read -> colorize -> write of the same photo again (median
  of 3): the per-photo cost in a folder run;
* ``film``: the whole test clip (../shared/data/video/skyar_annarbor.mp4,
  960x544, 206 frames) made gray, colorized with and without chroma
  smoothing, with the flicker figures.

The 12 MP photo is the largest real B&W photo of ../shared/data/bw resized
to 4000x3000 (a synthetic textured image when that folder is absent).
"""

import json
import os
import pathlib
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import av  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from PIL import Image  # noqa: E402

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"

flags.DEFINE_list("presets", ["paper"], "Model presets to time (tiny: the test preset).")
flags.DEFINE_string("output", None, "Write the results as JSON here.")
flags.DEFINE_bool("film", True, "Also time the film clip.")
FLAGS = flags.FLAGS


def make_photo(path):
    source = SHARED / "bw" / "covered-wagons-traveling.jpg"
    if source.exists():
        image = Image.open(source).convert("RGB").resize((4000, 3000), Image.LANCZOS)
    else:
        rng = np.random.default_rng(0)
        image = Image.fromarray(rng.integers(0, 255, (750, 1000, 3), dtype=np.uint8)).resize((4000, 3000))
    image.save(path, quality=90)


def make_gray_clip(source, path):
    with av.open(str(source)) as inp, av.open(str(path), "w") as out:
        vin, ain = inp.streams.video[0], inp.streams.audio[0]
        vout = out.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt, vout.time_base = vin.width, vin.height, "yuv420p", vin.time_base
        aout = out.add_stream_from_template(ain)
        for packet in inp.demux(vin, ain):
            if packet.stream is ain:
                if packet.dts is not None:
                    packet.stream = aout
                    out.mux(packet)
                continue
            for frame in packet.decode():
                rgb = frame.to_ndarray(format="rgb24").astype(np.float32)
                y = np.round(rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32)).astype(np.uint8)
                gray = av.VideoFrame.from_ndarray(np.repeat(y[..., None], 3, axis=-1), format="rgb24")
                gray.pts, gray.time_base = frame.pts, frame.time_base
                for p in vout.encode(gray):
                    out.mux(p)
        for p in vout.encode(None):
            out.mux(p)


def colorize_file(colorizer, images, src, dst):
    picture = images.read_image(src)
    (rgb, alpha), = colorizer.colorize_pictures([picture])
    images.write_image(dst, rgb, alpha=alpha, image_format=picture.format)


def main(argv):
    del argv
    from keras_colorize.inference import images
    from keras_colorize.inference import film
    from keras_colorize.inference.api import Colorizer
    from keras_colorize.models import build_colorizer, get_preset

    results = {"cpu_count": os.cpu_count(), "load_average_at_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        photo = tmp / "photo12mp.jpg"
        make_photo(photo)
        clip = SHARED / "video" / "skyar_annarbor.mp4"
        gray_clip = tmp / "gray.mp4"
        if FLAGS.film and clip.exists():
            make_gray_clip(clip, gray_clip)
        for preset in FLAGS.presets:
            model_path = tmp / f"{preset}.keras"
            build_colorizer(get_preset(preset)).save(model_path)
            entry = {}
            start = time.time()
            colorizer = Colorizer.from_path(model_path, batch_size=8)
            colorize_file(colorizer, images, photo, tmp / "out_cold.jpg")
            entry["photo_cold_s"] = time.time() - start
            warm = []
            for i in range(3):
                start = time.time()
                colorize_file(colorizer, images, photo, tmp / f"out_{i}.jpg")
                warm.append(time.time() - start)
            entry["photo_warm_s"] = statistics.median(warm)
            entry["photo_warm_all_s"] = warm
            if gray_clip.exists():
                for smooth in (False, True):
                    report = film.colorize_video(colorizer, gray_clip, tmp / f"film_{smooth}.mp4", smooth=smooth,
                                                  progress=False)
                    entry[f"film_{'smooth' if smooth else 'plain'}"] = {
                        k: report[k] for k in ("frames", "fps", "size", "audio", "seconds", "frames_per_second",
                                               "flicker_ab")}
            results[preset] = entry
            print(preset, json.dumps(entry, indent=1), flush=True)
    results["load_average_at_end"] = os.getloadavg()
    if FLAGS.output:
        pathlib.Path(FLAGS.output).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(FLAGS.output).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    app.run(main)
