"""Film colorization on the real test clip made gray: frames, size, fps, audio, flicker, failures."""

import os
import pathlib
import subprocess
import sys

import av
import keras
import numpy as np
import pytest
from PIL import Image
from skimage import color as skcolor

from keras_colorize import inference
from keras_colorize import video
from keras_colorize.models import build_colorizer, get_preset

REPO = pathlib.Path(__file__).resolve().parents[1]
FRAMES = 60


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory):
    """Seeded random weights with a calm chroma head (``out_bn`` gamma 0.1).

    Untrained, the head saturates its sigmoid and most colours fall outside sRGB,
    where gamut mapping, not the prediction, decides the output colour; scaled
    down, the colours stay in gamut (a*b* std ~11, like a trained model's), so
    the output files show the predicted chroma and its flicker.
    """
    keras.utils.set_random_seed(0)
    model = build_colorizer(get_preset("tiny"))
    head = model.get_layer("out_bn")
    weights = head.get_weights()
    weights[0] = np.full_like(weights[0], 0.1)
    head.set_weights(weights)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def colorizer(tiny_model_path):
    return inference.Colorizer.from_path(tiny_model_path, batch_size=8)


@pytest.fixture(scope="module")
def gray_clip(video_path, tmp_path_factory):
    """The first FRAMES frames of the clip, gray (Rec. 709 luma), H.264, with its AAC audio copied."""
    path = tmp_path_factory.mktemp("clip") / "gray.mp4"
    with av.open(str(video_path)) as source, av.open(str(path), "w") as output:
        in_video, in_audio = source.streams.video[0], source.streams.audio[0]
        out_video = output.add_stream("libx264", rate=in_video.average_rate)
        out_video.width, out_video.height = in_video.codec_context.width, in_video.codec_context.height
        out_video.pix_fmt, out_video.time_base = "yuv420p", in_video.time_base
        out_audio = output.add_stream_from_template(in_audio)
        count, end = 0, None
        for packet in source.demux(in_video, in_audio):
            if packet.stream is in_audio:
                if packet.dts is not None and (end is None or packet.pts * in_audio.time_base <= end):
                    packet.stream = out_audio
                    output.mux(packet)
                continue
            for frame in packet.decode():
                if count == FRAMES:
                    end = end or float(frame.pts * frame.time_base)
                    continue
                rgb = frame.to_ndarray(format="rgb24").astype(np.float32)
                luma = np.round(rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32)).astype(np.uint8)
                gray = av.VideoFrame.from_ndarray(np.repeat(luma[..., None], 3, axis=-1), format="rgb24")
                gray.pts, gray.time_base = frame.pts, frame.time_base
                for out_packet in out_video.encode(gray):
                    output.mux(out_packet)
                count += 1
        for out_packet in out_video.encode(None):
            output.mux(out_packet)
    return path


def _probe(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        rate, size = float(stream.average_rate), (stream.width, stream.height)
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        audio_packets = 0
    if audio:
        with av.open(str(path)) as container:
            audio_packets = sum(1 for p in container.demux(container.streams.audio[0]) if p.size)
    return {"frames": frames, "rate": rate, "size": size,
            "audio": audio, "audio_packets": audio_packets}


def _decoded_flicker(frames, gray_frames):
    """Independent flicker of decoded frames: mean |d a*b*| where the gray input's L* changed < 1."""
    def lab(frame):
        small = Image.fromarray(frame).resize((128, 72), Image.BOX)
        return skcolor.rgb2lab(np.asarray(small) / 255.0)

    changes = []
    for t in range(1, len(frames)):
        l_now, l_before = lab(gray_frames[t])[..., 0], lab(gray_frames[t - 1])[..., 0]
        static = np.abs(l_now - l_before) < 1.0
        ab_now, ab_before = lab(frames[t])[..., 1:], lab(frames[t - 1])[..., 1:]
        changes.append(np.abs(ab_now - ab_before)[static].mean())
    return float(np.mean(changes))


@pytest.mark.slow
def test_gray_clip_keeps_frames_size_fps_audio_and_smoothing_lowers_flicker(colorizer, gray_clip, tmp_path):
    source = _probe(gray_clip)
    assert len(source["frames"]) == FRAMES and source["audio"] == "aac"

    plain = video.colorize_video(colorizer, gray_clip, tmp_path / "plain.mp4", progress=False)
    smooth = video.colorize_video(colorizer, gray_clip, tmp_path / "smooth.mp4", smooth=True, progress=False)
    for report, path in ((plain, tmp_path / "plain.mp4"), (smooth, tmp_path / "smooth.mp4")):
        out = _probe(path)
        assert report["frames"] == len(out["frames"]) == FRAMES
        assert out["size"] == source["size"] == (960, 544)
        assert out["rate"] == pytest.approx(source["rate"], rel=1e-3)
        assert out["audio"] == "aac" and out["audio_packets"] == source["audio_packets"] > 0
        lab = skcolor.rgb2lab(out["frames"][FRAMES // 2][::8, ::8] / 255.0)
        assert np.hypot(lab[..., 1], lab[..., 2]).mean() > 2.0, "output is not colorized"
        l_in = skcolor.rgb2lab(source["frames"][FRAMES // 2][::8, ::8] / 255.0)[..., 0]
        assert np.abs(lab[..., 0] - l_in).mean() < 2.0, "output L* departs from the input's"
        assert not list(tmp_path.glob(".*partial*"))

    # The same figure from the library on both runs (it always reports both) ...
    assert plain["flicker_ab"]["raw"] == pytest.approx(smooth["flicker_ab"]["raw"], rel=1e-6)
    assert smooth["flicker_ab"]["smoothed"] < 0.8 * smooth["flicker_ab"]["raw"]
    # ... and measured independently on the decoded output files.
    grays = source["frames"]
    flicker_plain = _decoded_flicker(_probe(tmp_path / "plain.mp4")["frames"], grays)
    flicker_smooth = _decoded_flicker(_probe(tmp_path / "smooth.mp4")["frames"], grays)
    assert flicker_smooth < 0.95 * flicker_plain, (flicker_smooth, flicker_plain)  # 0.81 vs 0.96 (seeded)


def test_scene_cut_resets_smoothing():
    smoother = video.ChromaSmoother(video.SmoothingConfig(alpha=0.1))
    dark, bright = np.full((8, 8, 1), 0.2, np.float32), np.full((8, 8, 1), 0.8, np.float32)
    red, blue = np.full((8, 8, 2), 0.7, np.float32), np.full((8, 8, 2), 0.3, np.float32)
    smoother(dark, red)
    np.testing.assert_allclose(smoother(dark, blue), 0.9 * red + 0.1 * blue, rtol=1e-6)  # static: smoothed
    np.testing.assert_array_equal(smoother(bright, blue), blue)  # cut: restarts on the new scene
    assert smoother.report()["scene_cuts"] == 1


def test_unreadable_input_is_a_clear_error(colorizer, tiny_model_path, tmp_path):
    bad = tmp_path / "film.mp4"
    bad.write_text("this is not a video")
    with pytest.raises(ValueError, match="cannot read it as a video"):
        video.colorize_video(colorizer, bad, tmp_path / "out.mp4", progress=False)
    with pytest.raises(ValueError, match="does not exist"):
        video.colorize_video(colorizer, tmp_path / "missing.mp4", tmp_path / "out.mp4", progress=False)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-m", "keras_colorize.colorize_video", "--model", str(tiny_model_path),
                             "--input", str(bad), "--output", str(tmp_path / "out.mp4")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "cannot read it as a video" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film.mp4"]


class _InterruptedColorizer:
    """The real colorizer, interrupted (as by Ctrl-C) on its third network call."""

    def __init__(self, colorizer):
        self._colorizer, self.calls = colorizer, 0
        self.image_size = colorizer.image_size

    def predict_ab(self, l_small):
        self.calls += 1
        if self.calls == 3:
            raise KeyboardInterrupt
        return self._colorizer.predict_ab(l_small)


def test_interrupted_run_leaves_no_output(colorizer, gray_clip, tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        video.colorize_video(_InterruptedColorizer(colorizer), gray_clip, out, batch_size=4, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_odd_size_silent_clip_keeps_size_and_rate(colorizer, landscapes_dir, tmp_path):
    """No audio, odd frame size (4:2:0 impossible), MKV: still same size, count and rate."""
    photo = np.asarray(Image.open(sorted(landscapes_dir.glob("*.jpg"))[0]).convert("L").resize((101, 75)))
    source = tmp_path / "odd.mkv"
    with av.open(str(source), "w") as output:
        stream = output.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 101, 75, "yuv444p"
        for shift in range(12):
            frame = av.VideoFrame.from_ndarray(np.repeat(np.roll(photo, shift, axis=1)[..., None], 3, axis=-1),
                                               format="rgb24")
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    report = video.colorize_video(colorizer, source, tmp_path / "out.mkv", smooth=True, progress=False)
    out = _probe(tmp_path / "out.mkv")
    assert report["frames"] == len(out["frames"]) == 12 and report["audio"] is None
    assert out["size"] == (101, 75) and out["rate"] == pytest.approx(24.0) and out["audio"] is None
