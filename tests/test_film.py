"""Film colorization on the real test clip made gray: frames, size, fps, audio, flicker, failures."""

import json
import os
import pathlib
import stat
import subprocess
import sys

import av
import keras
import numpy as np
import pytest
from PIL import Image
from skimage import color as skcolor

from keras_colorize.inference import api
from keras_colorize.inference import film
from keras_colorize.models import build_colorizer, get_preset

REPO = pathlib.Path(__file__).resolve().parents[1]
FRAMES = 60


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory):
    """Seeded random weights with a calm chroma head (``out_bn`` gamma 0.35).

    Untrained, the head saturates its sigmoid and most colours fall outside sRGB,
    where gamut mapping, not the prediction, decides the output colour; scaled
    down, the colours stay in gamut (a*b* std ~11 on real photos, like a trained
    model's), so the output files show the predicted chroma and its flicker.
    """
    keras.utils.set_random_seed(0)
    model = build_colorizer(get_preset("tiny"))
    head = model.get_layer("out_bn")
    weights = head.get_weights()
    weights[0] = np.full_like(weights[0], 0.35)
    head.set_weights(weights)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def colorizer(tiny_model_path):
    return api.Colorizer.from_path(tiny_model_path, batch_size=8)


@pytest.fixture(scope="module")
def gray_clip(video_path, tmp_path_factory):
    """The first FRAMES frames of the clip, gray (Rec. 709 luma), H.264, with its AAC audio copied."""
    return _make_film(video_path, tmp_path_factory.mktemp("clip") / "gray.mp4", frames=FRAMES, size=None)


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

    plain = film.colorize_video(colorizer, gray_clip, tmp_path / "plain.mp4", progress=False)
    smooth = film.colorize_video(colorizer, gray_clip, tmp_path / "smooth.mp4", smooth=True, progress=False)
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
    assert flicker_smooth < 0.95 * flicker_plain, (flicker_smooth, flicker_plain)  # 0.75 vs 0.87 (seeded)


def test_scene_cut_resets_smoothing():
    smoother = film.ChromaSmoother(film.SmoothingConfig(alpha=0.1))
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
        film.colorize_video(colorizer, bad, tmp_path / "out.mp4", progress=False)
    with pytest.raises(ValueError, match="does not exist"):
        film.colorize_video(colorizer, tmp_path / "missing.mp4", tmp_path / "out.mp4", progress=False)
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

    def colorize_lightness(self, *args, **kwargs):
        self.calls += 1
        if self.calls == 3:
            raise KeyboardInterrupt
        return self._colorizer.colorize_lightness(*args, **kwargs)


def test_interrupted_run_leaves_no_output(colorizer, gray_clip, tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        film.colorize_video(_InterruptedColorizer(colorizer), gray_clip, out, batch_size=4, progress=False)
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
    report = film.colorize_video(colorizer, source, tmp_path / "out.mkv", smooth=True, progress=False)
    out = _probe(tmp_path / "out.mkv")
    assert report["frames"] == len(out["frames"]) == 12 and report["audio"] is None
    assert out["size"] == (101, 75) and out["rate"] == pytest.approx(24.0) and out["audio"] is None


# ----------------------------------------------------------------------------
# Reliability: short, damaged and wrong inputs; exit codes; atomic outputs
# ----------------------------------------------------------------------------

SMALL = 48  # frames of the small films below (160x96: fast to colorize)


def _make_film(source_path, path, *, frames=SMALL, size=(160, 96), audio=True, options=None):
    """The first ``frames`` frames of the real clip, gray (Rec. 709 luma), scaled to ``size`` (None: as it is), H.264;
    its audio copied up to the same end."""
    with av.open(str(source_path)) as source, av.open(str(path), "w", options=options or {}) as output:
        in_video, in_audio = source.streams.video[0], source.streams.audio[0]
        out_video = output.add_stream("libx264", rate=in_video.average_rate)
        size = size or (in_video.codec_context.width, in_video.codec_context.height)
        out_video.width, out_video.height = size
        out_video.pix_fmt, out_video.time_base = "yuv420p", in_video.time_base
        out_audio = output.add_stream_from_template(in_audio) if audio else None
        count, end = 0, None
        for packet in source.demux(*([in_video] + ([in_audio] if audio else []))):
            if packet.stream is in_audio:
                if packet.dts is not None and (end is None or packet.pts * in_audio.time_base <= end):
                    packet.stream = out_audio
                    output.mux(packet)
                continue
            for frame in packet.decode():
                if count == frames:
                    end = end or float(frame.pts * frame.time_base)
                    continue
                rgb = frame.reformat(width=size[0], height=size[1]).to_ndarray(format="rgb24").astype(np.float32)
                luma = np.round(rgb @ np.array([0.2126, 0.7152, 0.0722], np.float32)).astype(np.uint8)
                gray = av.VideoFrame.from_ndarray(np.repeat(luma[..., None], 3, axis=-1), format="rgb24")
                gray.pts, gray.time_base = frame.pts, frame.time_base
                for out_packet in out_video.encode(gray):
                    output.mux(out_packet)
                count += 1
        for out_packet in out_video.encode(None):
            output.mux(out_packet)
    return path


def _truncate(path, destination, fraction):
    data = pathlib.Path(path).read_bytes()
    destination.write_bytes(data[:int(len(data) * fraction)])
    return destination


@pytest.fixture(scope="module")
def small_film(video_path, tmp_path_factory):
    """48 gray frames, 160x96, MP4 with the index first (as the shared clip has it) and AAC audio."""
    return _make_film(video_path, tmp_path_factory.mktemp("small") / "small.mp4", options={"movflags": "faststart"})


def _cli(*args, umask=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "keras_colorize.colorize_video", "--noprogress", *map(str, args)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600, umask=umask or -1)


def _frame_count(path):
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


@pytest.mark.slow
def test_truncated_film_exits_1_and_allow_partial_accepts_it(small_film, tiny_model_path, tmp_path):
    """The first 30 % of the bytes: the index still declares 48 frames, 12 decode."""
    cut = _truncate(small_film, tmp_path / "cut.mp4", 0.3)
    out = tmp_path / "out" / "cut_color.mp4"
    result = _cli("--model", tiny_model_path, "--input", cut, "--output", out)
    assert result.returncode == 1, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("kc-colorize-video: error: ") and "short or damaged" in error
    assert "of the 48 frames its frame count declares" in error and "--allow_partial" in error
    assert "Traceback" not in result.stderr
    decoded = _frame_count(out)  # the frames that decoded are kept, and the report says what is missing
    assert 0 < decoded < SMALL - 2
    report = json.loads((out.parent / "cut_color.mp4.json").read_text())
    assert report["complete"] is False and report["ok"] is False
    assert report["frames"] == decoded and report["expected_frames"] == SMALL
    assert report["missing_frames"] == SMALL - decoded

    accepted = _cli("--model", tiny_model_path, "--input", cut, "--output", out, "--allow_partial", "--overwrite")
    assert accepted.returncode == 0, accepted.stderr
    assert "WARNING" in accepted.stdout and "accepted with --allow_partial" in accepted.stdout
    assert f"decoded {decoded} of the 48 frames" in accepted.stdout
    assert sorted(p.name for p in out.parent.iterdir()) == ["cut_color.mp4", "cut_color.mp4.json"]


def test_shared_clip_cut_to_30_percent_is_short(colorizer, video_path, tmp_path):
    """The issue's case: the real clip's first 30 % (index at the front, 206 frames declared) gave 'wrote 43 frames'."""
    cut = _truncate(video_path, tmp_path / "cut.mp4", 0.3)
    assert film.inspect(cut).declared_frames == 206
    summary = film.run(film.FilmConfig(input=str(cut), output=str(tmp_path / "out.mp4")), colorizer=colorizer,
                        progress=False)
    assert 0 < summary.frames < 100 and summary.expected_frames == 206
    assert not summary.complete and not summary.ok and summary.missing_frames == 206 - summary.frames
    assert "decoded" in summary.problem() and "206" in summary.problem()
    assert json.loads((tmp_path / "out.mp4.json").read_text())["complete"] is False


def test_pyav_made_films_complete_and_truncated(colorizer, video_path, tmp_path):
    """Matroska declares no frame count, only a duration: a whole film passes, its first 30 % does not."""
    whole = _make_film(video_path, tmp_path / "whole.mkv")
    info = film.inspect(whole)
    assert info.declared_from == "stream duration" and abs(info.declared_frames - SMALL) <= 2
    summary = film.run(film.FilmConfig(input=str(whole), output=str(tmp_path / "whole_color.mkv")),
                        colorizer=colorizer, progress=False)
    assert summary.frames == SMALL and summary.complete and summary.ok and summary.problem() is None

    cut = _truncate(whole, tmp_path / "cut.mkv", 0.3)
    summary = film.run(film.FilmConfig(input=str(cut), output=str(tmp_path / "cut_color.mkv"), allow_partial=True),
                        colorizer=colorizer, progress=False)
    assert 0 < summary.frames < SMALL // 2 and not summary.complete and summary.ok  # ok: allow_partial
    assert "stream duration" in summary.problem()

    # max_frames caps what is expected: stopping early on purpose is not "short".
    summary = film.run(film.FilmConfig(input=str(whole), output=str(tmp_path / "ten.mkv"), max_frames=10),
                        colorizer=colorizer, progress=False)
    assert summary.frames == 10 and summary.expected_frames == 10 and summary.complete


def test_damaged_middle_is_reported(colorizer, small_film, tmp_path):
    """Bytes overwritten mid-file: the decoder refuses packets; the frame count alone may not show it."""
    data = bytearray(small_film.read_bytes())
    start = data.index(b"mdat") + len(data) // 4
    data[start:start + len(data) // 5] = b"\xff" * (len(data) // 5)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    summary = film.run(film.FilmConfig(input=str(damaged), output=str(tmp_path / "out.mp4")), colorizer=colorizer,
                        progress=False)
    assert summary.damaged_packets > 0 and not summary.complete and not summary.ok
    assert "damaged video packet" in summary.problem() and summary.frames == _frame_count(tmp_path / "out.mp4")


def test_still_image_is_refused_even_named_mp4(landscapes_dir, tmp_path):
    photo = sorted(landscapes_dir.glob("*.jpg"))[0]
    renamed = tmp_path / "holiday.mp4"
    renamed.write_bytes(photo.read_bytes())
    for still in (photo, renamed):
        with pytest.raises(ValueError, match="is a still image"):
            film.inspect(still)
        result = _cli("--model", "unused.keras", "--input", still, "--output", tmp_path / "out.mp4")
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and str(still) in result.stderr
        assert "is a still image" in result.stderr and "kc-colorize " in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["holiday.mp4"]


def test_bad_numeric_flags_exit_2_naming_flag_and_value(small_film, tmp_path):
    for flag, value in (("--max_frames", "0"), ("--max_frames", "-5"), ("--batch_size", "0"), ("--crf", "52"),
                        ("--crf", "-1"), ("--smooth_alpha", "0"), ("--smooth_alpha", "1.5"),
                        ("--cut_threshold", "-1"), ("--max_frames", "abc")):
        result = _cli("--model", "unused.keras", "--input", small_film, "--output", tmp_path / "out.mp4",
                      f"{flag}={value}")
        assert result.returncode == 2, (flag, value, result.stderr)
        line = result.stderr.strip()
        assert "\n" not in line and line.startswith("kc-colorize-video: error: ")
        assert flag in line and value in line, line
    with pytest.raises(ValueError, match="max_frames must be a positive integer"):
        film.FilmConfig(input="a.mp4", output="b.mp4", max_frames=0).validate()
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs_and_outputs_exit_2_and_write_nothing(small_film, video_path, tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    audio_only = tmp_path / "sound.m4a"
    with av.open(str(video_path)) as source, av.open(str(audio_only), "w") as output:
        out_audio = output.add_stream_from_template(source.streams.audio[0])
        for packet in source.demux(source.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = out_audio
                output.mux(packet)
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("a file, not a folder")
    existing = tmp_path / "done.mp4"
    existing.write_bytes(b"earlier result")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    cases = [
        (empty, tmp_path / "a.mp4", "is empty (0 bytes)"),
        (audio_only, tmp_path / "a.mp4", "has no video stream (audio aac)"),
        (tmp_path / "missing.mp4", tmp_path / "a.mp4", "does not exist"),
        (small_film, small_film, "would overwrite the input"),
        (small_film, not_a_folder / "a.mp4", "is not a folder"),
        (small_film, tmp_path / "a.jpg", "is an image format"),
        (small_film, tmp_path / "a.mp3", "cannot hold H.264 video"),
        (small_film, tmp_path / "noextension", "has no extension"),
        (small_film, existing, "exists (pass --overwrite to replace it)"),
    ]
    for source, output, message in cases:
        result = _cli("--model", "unused.keras", "--input", source, "--output", output)
        assert result.returncode == 2 and message in result.stderr, (source, output, result.stderr)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_undecodable_film_keeps_the_existing_output(colorizer, small_film, tmp_path):
    """The index but no picture data: nothing decodes; an earlier output under --overwrite stays as it was."""
    data = small_film.read_bytes()
    header = tmp_path / "header_only.mp4"
    header.write_bytes(data[:data.index(b"mdat") + 4])
    out = tmp_path / "out.mp4"
    out.write_bytes(b"earlier result")
    with pytest.raises(ValueError, match="no video frame could be decoded"):
        film.run(film.FilmConfig(input=str(header), output=str(out), overwrite=True), colorizer=colorizer,
                  progress=False)
    assert out.read_bytes() == b"earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["header_only.mp4", "out.mp4"]


@pytest.mark.slow
def test_complete_run_exit_0_with_report_and_umask(small_film, tiny_model_path, tmp_path):
    out = tmp_path / "film_color.mp4"
    result = _cli("--model", tiny_model_path, "--input", small_film, "--output", out, "--smooth", umask=0o027)
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}: {SMALL} frames, 160x96" in result.stdout and "WARNING" not in result.stdout
    assert _frame_count(out) == SMALL
    report = json.loads((tmp_path / "film_color.mp4.json").read_text())
    assert report["complete"] is True and report["frames"] == report["expected_frames"] == SMALL
    assert report["config"]["smooth"] is True and report["audio"] == "copied (aac)"
    for path in (out, tmp_path / "film_color.mp4.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640  # 0666 less the umask, not mkstemp's 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["film_color.mp4", "film_color.mp4.json"]


def test_model_defaults_to_the_bundled_one(small_film, tmp_path):
    from keras_colorize import pretrained  # noqa: PLC0415

    shown = " ".join(_cli("--helpshort").stdout.split())  # flags are not imported here: names clash across CLIs
    assert " ".join(pretrained.MODEL_HELP.split()) in shown and f"(default: '{pretrained.DEFAULT}')" in shown
    assert film.FilmConfig(input="a.mp4", output="b.mp4").model == pretrained.DEFAULT
    if (pathlib.Path(pretrained.__file__).parent / pretrained.RELEASED[pretrained.DEFAULT].filename).exists():
        pytest.skip("the bundled model is installed; its run is covered by the release tests")
    result = _cli("--input", small_film, "--output", tmp_path / "out.mp4")
    assert result.returncode == 2 and "bundled model 'scenes' is missing" in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_a_reference_and_no_model_use_the_bundled_guided_model(small_film, landscapes_dir, tmp_path):
    """kc-colorize-video --reference with no --model runs scenes_guided (the automatic default takes no hints)."""
    from keras_colorize import pretrained

    reference = sorted(landscapes_dir.glob("*.jpg"))[0]
    out = tmp_path / "out.mp4"
    result = _cli("--input", small_film, "--output", out, "--reference", reference, "--max_frames=4")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(film.report_path(out).read_text())
    assert report["model"] == pretrained.GUIDED and _frame_count(out) == 4
