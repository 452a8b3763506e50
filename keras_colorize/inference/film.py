"""Colorize film: decode, colorize in batches at full resolution, re-encode with the sound.

The paper colorized 6,651 frames of a 1947 film frame by frame. This module
does the same with PyAV (which ships its own FFmpeg): every frame goes through
the full-resolution path of :class:`keras_colorize.inference.api.Colorizer`
(L* of the frame kept, a*b* predicted at the model size and upsampled); the
output has the input's frame count, frame size and timestamps (hence frame
rate); the audio track is copied packet for packet (or re-encoded to AAC when
the output container cannot hold its codec).

Flicker. A per-frame colorizer changes its mind between frames, and viewers
see it as colour flicker. We measure it as the mean absolute frame-to-frame
change of a*b* (in a*b* units, the mean over both channels) over *static*
pixels, those whose L* changed by less than ``static_threshold`` between the
two frames, skipping scene cuts: there the image did not change, so any
change of colour is flicker, not motion. It is computed at the model's
resolution, where the chroma is decided (the full-resolution chroma is a
bilinear upsampling of it).

Smoothing (``smooth=True``): an exponential moving average of the predicted
a*b*, ``ema = (1 - alpha) * ema + alpha * prediction``, per pixel only where
the scene is static (``|dL| < motion_threshold``; moving pixels take the new
prediction, so moving objects do not drag old colour behind them), reset at
scene cuts (mean ``|dL|`` above ``cut_threshold``). Both flicker figures, with
and without smoothing, are reported on every run.

Hints (a guided model, :mod:`keras_colorize.guidance.hint_file`): ``reference`` gives
the whole film one palette (which also steadies its colours from frame to frame);
``hints`` is a frame-range file, a JSON list of hint files each with
``"frames": [first, last]`` (0-based frame numbers of the decoded film, both
included; ranges must not overlap), whose points are in the frame's pixels or
fractions; a range's own reference wins over ``reference``; frames outside every
range get ``reference`` or no hints. Both are checked (fields, points inside the
frame, reference photos, a model that takes hints) before anything is written.

Reliability. :func:`run` refuses, before loading the model, anything that is
not a readable film (a missing or empty file, a still image even when named
``.mp4``, audio only, a file FFmpeg cannot open) and any output that would
overwrite the input, exists, is not a film container or cannot be written.
The frames decoded are compared with what the container declares (its frame
count, else its duration x frame rate): a film more than
``max(SHORT_TOLERANCE_FRAMES, SHORT_TOLERANCE_FRACTION x expected)`` frames
short, or with packets the decoder refused, is written with the frames that
decoded but reported not ``complete`` (and not ``ok`` unless
``allow_partial``). A container that declares no length (fragmented MP4
without durations, some streams) cannot be checked; the summary says so.
The output is encoded under a hidden temporary name that keeps its suffix
(PyAV picks the container from it) and renamed when complete.

Example::

    from keras_colorize.inference import film
    summary = film.run(film.FilmConfig(input="film.mp4", output="film_color.mp4", smooth=True))
    summary.ok, summary.frames, summary.expected_frames, summary.flicker_ab
"""

import dataclasses
import fractions
import itertools
import json
import math
import os
import pathlib
import time

import numpy as np
from tqdm import tqdm

from keras_colorize import cli
from keras_colorize import fileio
from keras_colorize import pretrained
from keras_colorize.inference import batching
from keras_colorize.inference import model_spec

av = cli.require_extra("av", "video")  # PyAV is optional: without it, MissingExtra names the [video] extra

# Audio codecs an MP4/MOV container takes as they are; others are re-encoded to AAC.
_MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}


@dataclasses.dataclass(frozen=True)
class SmoothingConfig:
    """Temporal chroma smoothing; thresholds in L* units (0-100).

    Attributes:
      alpha: weight of the new prediction in the moving average (1 = off).
      motion_threshold: pixels whose L* changed more than this are moving and
        take the new prediction.
      cut_threshold: a mean |dL*| above this is a scene cut: the average restarts.
      static_threshold: pixels whose L* changed less than this count as static
        in the flicker figure.
    """

    alpha: float = 0.25
    motion_threshold: float = 4.0
    cut_threshold: float = 12.0
    static_threshold: float = 1.0

    def validate(self, names=None):
        """Raises ``ValueError`` naming the field (or ``names[field]``, e.g. a flag) and the value."""
        if not 0.0 < self.alpha <= 1.0:  # also refuses NaN
            raise ValueError(f"{_flag(names, 'alpha')} must be in (0, 1], got {self.alpha!r}")
        for name in ("motion_threshold", "cut_threshold", "static_threshold"):
            value = getattr(self, name)
            if not 0.0 < value < math.inf:
                raise ValueError(f"{_flag(names, name)} must be a positive number, got {value!r}")


class ChromaSmoother:
    """Streams predicted a*b* through the motion-aware EMA and tallies flicker."""

    def __init__(self, config=SmoothingConfig()):
        config.validate()
        self.config = config
        self._prev_l = self._prev_raw = self._prev_out = self._ema = None
        self.raw_flicker = []
        self.smoothed_flicker = []
        self.cuts = 0

    def __call__(self, l_small, ab_small):
        """``l_small`` (S, S, 1) L/100 and ``ab_small`` (S, S, 2) target units -> smoothed a*b* (target units)."""
        l_now = l_small[..., 0] * 100.0
        if self._prev_l is None:
            self._ema = ab_small
        else:
            dl = np.abs(l_now - self._prev_l)
            if dl.mean() > self.config.cut_threshold:
                self.cuts += 1
                self._ema = ab_small
            else:
                static = dl < self.config.static_threshold
                if static.any():
                    self.raw_flicker.append(_mean_change(ab_small, self._prev_raw, static))
                moving = (dl > self.config.motion_threshold)[..., None]
                blended = (1.0 - self.config.alpha) * self._ema + self.config.alpha * ab_small
                self._ema = np.where(moving, ab_small, blended)
                if static.any():
                    self.smoothed_flicker.append(_mean_change(self._ema, self._prev_out, static))
        self._prev_l, self._prev_raw, self._prev_out = l_now, ab_small, self._ema
        return self._ema

    def report(self):
        """Flicker figures (a*b* units): ``raw`` and ``smoothed``, plus the scene cuts seen."""
        return {
            "raw": float(np.mean(self.raw_flicker)) if self.raw_flicker else 0.0,
            "smoothed": float(np.mean(self.smoothed_flicker)) if self.smoothed_flicker else 0.0,
            "frame_pairs": len(self.raw_flicker),
            "scene_cuts": self.cuts,
        }


def _mean_change(ab_now, ab_before, mask):
    return float(np.abs(ab_now - ab_before)[mask].mean() * 255.0)


# ----------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------

#: libx264 speed presets (``preset``).
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")

#: A film counts as complete when it decodes to at least its expected frame
#: count less ``max(SHORT_TOLERANCE_FRAMES, SHORT_TOLERANCE_FRACTION x expected)``:
#: containers' counts are often off by a frame or two (edit lists, B-frame
#: priming, rounded durations), a truncated or damaged file loses far more.
SHORT_TOLERANCE_FRAMES = 2
SHORT_TOLERANCE_FRACTION = 0.01
#: A length derived from a duration (no frame count in the container) may
#: count this many frames more: durations run to the end of the last frame's
#: display time, which muxers round or guess.
DURATION_SLACK_FRAMES = 2
#: When only the container's overall duration is known (no per-stream frame
#: count or duration), an audio track may outlast the picture by this much.
CONTAINER_DURATION_SLACK_SECONDS = 1.0

# Container formats FFmpeg uses for single image files (a JPEG named .mp4 too).
_IMAGE_FORMATS = ("image2",)


def _flag(names, field):
    return (names or {}).get(field, field)


def _check_positive_int(value, name, *, optional=False):
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        what = "a positive integer" + (" (or unset for every frame)" if optional else "")
        raise ValueError(f"{name} must be {what}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class FilmConfig:
    """What film to colorize, where to, and how.

    Attributes:
      input: the film (any file FFmpeg reads with a video stream; gray or colour).
      output: destination file; its extension picks the container (.mp4, .mkv, .mov).
      model: a bundled model name (:data:`keras_colorize.pretrained.DEFAULT`
        unless given), a ``.keras`` file or a SavedModel folder.
      smooth: apply temporal chroma smoothing to the output.
      smoothing: :class:`SmoothingConfig`.
      batch_size: frames per network call.
      crf: libx264 quality, 0-51 (lower is better; 18 is visually lossless).
      preset: libx264 speed preset (:data:`X264_PRESETS`).
      max_frames: colorize only the first this many frames (None = all).
      allow_partial: accept a film that decodes to fewer frames than its
        container declares, or has undecodable packets: the summary warns but
        is ``ok``. Without it such a run is not ``ok`` (exit status 1).
      overwrite: replace an existing output.
      hints: hints per frame range (a JSON file, see the module docstring); needs a guided model.
      reference: a reference photo whose palette steers every frame; needs a guided model.

    Example::

        summary = film.run(film.FilmConfig(input="film.mp4", output="film_color.mp4", smooth=True))
        summary.ok, summary.frames, summary.missing_frames
    """

    input: str
    output: str
    model: str = pretrained.DEFAULT
    smooth: bool = False
    smoothing: SmoothingConfig = SmoothingConfig()
    batch_size: int = 8
    crf: int = 18
    preset: str = "veryfast"
    max_frames: int = None
    allow_partial: bool = False
    overwrite: bool = False
    hints: str | None = None
    reference: str | None = None

    def validate(self, names=None):
        """Raises ``ValueError`` naming the field and the value.

        Args:
          names: optional ``{field: name}`` used in the messages instead of
            the field names (the CLI passes its flag names, e.g.
            ``{"max_frames": "--max_frames", "alpha": "--smooth_alpha"}``).
        """
        for field in ("input", "output", "model"):
            if not getattr(self, field):
                raise ValueError(f"{_flag(names, field)} must be given, got {getattr(self, field)!r}")
        _check_positive_int(self.batch_size, _flag(names, "batch_size"))
        _check_positive_int(self.max_frames, _flag(names, "max_frames"), optional=True)
        if isinstance(self.crf, bool) or not isinstance(self.crf, int) or not 0 <= self.crf <= 51:
            raise ValueError(f"{_flag(names, 'crf')} must be an integer in [0, 51], got {self.crf!r}")
        if self.preset not in X264_PRESETS:
            raise ValueError(f"{_flag(names, 'preset')} must be one of {', '.join(X264_PRESETS)}, "
                             f"got {self.preset!r}")
        self.smoothing.validate(names)
        for field in ("hints", "reference"):
            value = getattr(self, field)
            if value is not None and not pathlib.Path(value).expanduser().is_file():
                raise ValueError(f"{_flag(names, field)} {str(value)!r} does not exist or is not a file")


# ----------------------------------------------------------------------------
# Input: what the container is and what it declares
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FilmInfo:
    """What :func:`inspect` learnt from a film's container, before decoding it.

    Attributes:
      declared_frames: the video frame count the container declares (its
        frame count, else its duration x frame rate), None if it says nothing.
      declared_from: where ``declared_frames`` came from: "frame count",
        "stream duration", "container duration" or None.
      slack_frames: frames the declared count may exceed the true count by
        (see :data:`DURATION_SLACK_FRAMES`, :data:`CONTAINER_DURATION_SLACK_SECONDS`).
    """

    path: str
    container: str
    width: int
    height: int
    rate: fractions.Fraction
    declared_frames: int = None
    declared_from: str = None
    slack_frames: int = 0
    audio: str = None


def _still_image_error(path, container, stream):
    """The message for a still image given as a film, or None if it may be a film."""
    name = container.format.name
    still = name in _IMAGE_FORMATS or name.endswith("_pipe") or (name == "gif" and stream.frames <= 1)
    if not still:
        return None
    return (f"input {str(path)!r} is a still image ({stream.codec_context.name} in {name}), not a film; "
            "colorize photographs with kc-colorize (python -m keras_colorize.colorize)")


def _parse_clock(text):
    """Seconds of an ``HH:MM:SS.fraction`` tag (Matroska's per-stream DURATION), or None."""
    try:
        hours, minutes, seconds = str(text).split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _declared(container, stream, rate):
    """``(frames, source, slack)``: what the container declares about the video stream's length."""
    if stream.frames:
        return int(stream.frames), "frame count", 0
    seconds, source, slack = None, None, DURATION_SLACK_FRAMES
    if stream.duration:
        seconds, source = float(stream.duration * stream.time_base), "stream duration"
    elif _parse_clock(stream.metadata.get("DURATION")):
        seconds, source = _parse_clock(stream.metadata["DURATION"]), "stream duration"
    elif container.duration:
        seconds, source = container.duration / av.time_base, "container duration"
        if len(container.streams) > 1:
            slack += math.ceil(CONTAINER_DURATION_SLACK_SECONDS * rate)
    if not seconds or seconds <= 0:
        return None, None, 0
    return max(1, round(seconds * rate)), source, slack


def _open_source(path):
    """Opens a film for reading; ValueError (naming the file and the reason) for anything that is not one."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"input {str(path)!r} does not exist or is not a file")
    if path.stat().st_size == 0:
        raise ValueError(f"input {str(path)!r} is empty (0 bytes)")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise ValueError(f"input {str(path)!r}: cannot read it as a video ({' '.join(str(e).split())}; "
                         "a film cut short while it was written or copied often looks like this)") from e
    try:
        if not container.streams.video:
            others = ", ".join(f"{s.type} {s.codec_context.name}" for s in container.streams) or "no streams"
            raise ValueError(f"input {str(path)!r} has no video stream ({others})")
        stream = container.streams.video[0]
        message = _still_image_error(path, container, stream)
        if message:
            raise ValueError(message)
        if not (stream.average_rate or stream.guessed_rate):
            raise ValueError(f"input {str(path)!r}: its video stream has no frame rate")
        if not stream.codec_context.width or not stream.codec_context.height:
            raise ValueError(f"input {str(path)!r}: its video stream has no frame size")
    except BaseException:
        container.close()
        raise
    return container


def _info(path, container):
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate
    frames, source, slack = _declared(container, stream, rate)
    audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
    return FilmInfo(path=str(path), container=container.format.name, width=stream.codec_context.width,
                    height=stream.codec_context.height, rate=rate, declared_frames=frames, declared_from=source,
                    slack_frames=slack, audio=audio)


def inspect(path):
    """Reads a film's container (no decoding): size, rate, declared length, audio.

    Raises:
      ValueError: a missing or empty file, a file FFmpeg cannot read, a still
        image, a file without a video stream (audio only), or a video stream
        without a frame rate or size.
    """
    with _open_source(path) as container:
        return _info(path, container)


# ----------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------


def check_output(config):
    """Refuses an output that would overwrite the input, exists (without ``overwrite``) or cannot be written."""
    output, source = pathlib.Path(config.output), pathlib.Path(config.input)
    if output.resolve() == source.resolve() or (output.exists() and os.path.samefile(output, source)):
        raise ValueError(f"output {str(output)!r} would overwrite the input")
    if output.is_dir():
        raise ValueError(f"output {str(output)!r} is a folder; give a file name such as film_color.mp4")
    if not output.suffix:
        raise ValueError(f"output {str(output)!r} has no extension; it chooses the container (.mp4, .mkv, .mov)")
    if output.exists() and not config.overwrite:
        raise ValueError(f"output {str(output)!r} exists (pass --overwrite to replace it)")
    if output.parent.exists() and not output.parent.is_dir():
        raise ValueError(f"output {str(output)!r}: {str(output.parent)!r} is not a folder")
    fileio.check_writable_dir(output.parent)


def _stale_partials(output):
    """Temporary files an earlier, killed run on the same output left (the film's and its report's only)."""
    return fileio.partials_of(output) + fileio.partials_of(report_path(output))


def _add_audio(output, in_audio):
    """Returns ``(out stream, transcode)``: remux when the container takes the codec, else AAC."""
    fmt = output.format.name
    if "mp4" not in fmt and "mov" not in fmt or in_audio.codec_context.name in _MP4_AUDIO:
        try:
            return output.add_stream_from_template(in_audio), False
        except (ValueError, av.error.FFmpegError):
            pass
    stream = output.add_stream("aac", rate=in_audio.codec_context.sample_rate)
    return stream, True


class _FilmWriter:
    """The output container: H.264 video at the input's size and timestamps, the audio copied or re-encoded."""

    def __init__(self, path, shown_path, in_video, in_audio, config):
        try:
            self.container = av.open(str(path), "w")
        except (av.error.FFmpegError, ValueError) as e:
            raise ValueError(f"output {str(shown_path)!r}: unsupported container ({e})") from e
        try:
            name = self.container.format.name
            if name in _IMAGE_FORMATS or name.endswith("_pipe"):
                raise ValueError(f"output {str(shown_path)!r} is an image format ({name}); "
                                 "give a film container such as .mp4, .mkv or .mov")
            try:
                self.video = self.container.add_stream("libx264", rate=in_video.average_rate or in_video.guessed_rate)
            except (av.error.FFmpegError, ValueError) as e:
                raise ValueError(f"output {str(shown_path)!r}: the {name} container cannot hold H.264 video "
                                 f"({e}); use .mp4, .mkv or .mov") from e
            self.video.width = in_video.codec_context.width
            self.video.height = in_video.codec_context.height
            # 4:2:0 needs even sides; odd-sized scans keep their size in 4:4:4 instead.
            even = self.video.width % 2 == 0 and self.video.height % 2 == 0
            self.video.pix_fmt = "yuv420p" if even else "yuv444p"
            self.video.options = {"crf": str(config.crf), "preset": config.preset}
            self.video.time_base = in_video.time_base
            self.audio, self.transcode = _add_audio(self.container, in_audio) if in_audio else (None, False)
        except BaseException:
            self.container.close()
            raise

    def write_frame(self, frame):
        for packet in self.video.encode(frame):
            self.container.mux(packet)

    def write_audio(self, packet):
        """Copies an audio packet (or decodes and re-encodes it to AAC)."""
        if self.audio is None:
            return
        if self.transcode:
            for frame in packet.decode():
                frame.pts = None
                for out_packet in self.audio.encode(frame):
                    self.container.mux(out_packet)
        elif packet.dts is not None:
            packet.stream = self.audio
            self.container.mux(packet)

    def finish(self):
        """Flushes the encoders; the container still needs :meth:`close`."""
        self.write_frame(None)
        if self.transcode:
            for packet in self.audio.encode(None):
                self.container.mux(packet)

    def close(self):
        self.container.close()


# ----------------------------------------------------------------------------
# Decoding and colorizing
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class _DecodeStats:
    """What went wrong while reading: packets the decoder refused, where reading stopped early."""

    damaged_packets: int = 0
    first_damage: str = None
    read_error: str = None
    out_of_order: int = 0  # frames dropped for a timestamp at or before the previous frame's


def _video_frames(source, in_video, in_audio, writer, stats):
    """Yields the decoded video frames in order; routes audio packets to ``writer``.

    A packet the decoder refuses is counted in ``stats`` and skipped (the
    decoder picks up again at the next keyframe); a read error ends the film
    there, noted in ``stats``; a frame that a damaged stream hands out with a
    timestamp at or before the previous one is dropped and counted (the muxer
    refuses it). Any of these makes the summary not ``complete``.
    """
    packets = source.demux(*([in_video] + ([in_audio] if in_audio is not None else [])))
    last_pts = None
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except av.error.FFmpegError as e:
            stats.read_error = " ".join(str(e).split())
            return
        if packet.stream is not in_video:
            writer.write_audio(packet)
            continue
        try:
            frames = packet.decode()
        except av.error.FFmpegError as e:
            stats.damaged_packets += 1
            where = "?" if packet.pts is None else f"{float(packet.pts * packet.time_base):.3f} s"
            stats.first_damage = stats.first_damage or f"packet at {where}: {' '.join(str(e).split())}"
            continue
        for frame in frames:
            if frame.pts is not None and last_pts is not None and frame.pts <= last_pts:
                stats.out_of_order += 1
                continue
            last_pts = frame.pts if frame.pts is not None else last_pts
            yield frame


class FrameGuidance:
    """A guided model's inputs per frame: its range's hints (:class:`hint_file.FilmHints`), else the reference.

    Args:
      colorizer: a guided :class:`keras_colorize.inference.api.Colorizer`.
      film_hints: :class:`keras_colorize.guidance.hint_file.FilmHints` or None.
      reference: the film's ``(R,)`` reference input, or None.
    """

    def __init__(self, colorizer, film_hints=None, reference=None):
        self._colorizer, self._film_hints, self._reference = colorizer, film_hints, reference
        self._cache = {}

    def __call__(self, index, width, height):
        """The ``Guidance`` of frame ``index`` (0-based) of a ``width`` x ``height`` film."""
        which, hints = self._film_hints.at(index) if self._film_hints is not None else (None, None)
        key = (which, width, height)
        if key not in self._cache:
            self._cache[key] = self._colorizer.guidance_inputs(hints, width, height, self._reference)
        return self._cache[key]


def _colorize_batch(colorizer, frames, smoother, smooth, guidance=None, first=0):
    """Colorized ``av.VideoFrame`` s (same timestamps) of decoded ``frames``; feeds ``smoother`` either way.

    ``guidance``: a :class:`FrameGuidance` (hints per frame; ``first`` is the index of ``frames[0]``) or None.
    """
    from keras_colorize.inference import merge  # noqa: PLC0415 - TensorFlow only once there is work

    l_full = [merge.lightness(frame.to_ndarray(format="rgb24")) for frame in frames]
    l_small = np.stack([merge.model_input(l, colorizer.image_size) for l in l_full])
    if guidance is None:
        ab_small = colorizer.predict_ab(l_small)
    else:
        ab_small = colorizer.predict_guided(
            l_small, [guidance(first + i, frame.width, frame.height) for i, frame in enumerate(frames)])
    out = []
    for frame, l, ls, ab in zip(frames, l_full, l_small, ab_small):
        smoothed = smoother(ls, ab)
        new = av.VideoFrame.from_ndarray(merge.merge_chunked(l, smoothed if smooth else ab), format="rgb24")
        new.pts, new.time_base = frame.pts, frame.time_base
        out.append(new)
    return out


def check_model(model):
    """Refuses a model that is not there (a bundled name not installed, a missing path) without loading it."""
    model_spec.locate(model)


def _load_colorizer(config):
    from keras_colorize.inference import api  # noqa: PLC0415 - TensorFlow only once the input checked out

    return api.Colorizer.from_path(config.model, batch_size=config.batch_size)


def check_guidance(config, info):
    """``(FilmHints or None, (R,) reference input or None)`` of ``config``, checked against the frame size.

    Raises:
      ValueError: a bad frame-range file (entry, field and value named), a point outside the frame, a
        reference photo that is missing or not an image.
    """
    if not (config.hints or config.reference):
        return None, None
    from keras_colorize.guidance import hint_file  # noqa: PLC0415

    film_hints = reference = None
    if config.hints:
        film_hints = hint_file.FilmHints.load(pathlib.Path(config.hints).expanduser())
        film_hints.check_frame(info.width, info.height)
        for r in film_hints.ranges:
            if r.hints.reference is not None:
                hint_file.reference_input(r.hints.reference)
    if config.reference:
        path = pathlib.Path(config.reference).expanduser()
        hint_file.check_reference(path, config.reference)
        reference = hint_file.reference_input(path)
    return film_hints, reference


def check_guided(colorizer, config, names=None):
    """Raises ``NoHintInputsError`` when ``config`` has hints and ``colorizer`` takes none."""
    if (config.hints or config.reference) and not getattr(colorizer, "guided", False):
        from keras_colorize.guidance import hint_file  # noqa: PLC0415

        labels = names or {"hints": "hints", "reference": "a reference photo"}
        given = " and ".join(_flag(labels, f) for f in ("hints", "reference") if getattr(config, f))
        raise hint_file.NoHintInputsError(hint_file.no_hint_inputs_message(config.model, given))


# ----------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------


@dataclasses.dataclass
class FilmSummary:
    """Outcome of a film run; ``ok`` is False for a short or damaged film unless ``allow_partial``.

    Attributes:
      frames: frames colorized and written.
      expected_frames: what the container declares (capped at ``max_frames``),
        None when it declares nothing (then shortness cannot be told).
      tolerance_frames: how many fewer frames still count as complete.
    """

    input: str
    output: str
    model: str
    frames: int
    declared_frames: int
    declared_from: str
    expected_frames: int
    tolerance_frames: int
    damaged_packets: int
    first_damage: str
    read_error: str
    out_of_order_frames: int
    allow_partial: bool
    fps: float
    size: list
    audio: str
    smoothing: dict
    flicker_ab: dict
    seconds: float

    @property
    def missing_frames(self):
        if self.expected_frames is None:
            return 0
        return max(0, self.expected_frames - self.frames)

    @property
    def complete(self):
        """True unless frames are missing beyond the tolerance or packets could not be decoded."""
        return (self.missing_frames <= self.tolerance_frames and not self.damaged_packets and not self.read_error
                and not self.out_of_order_frames)

    @property
    def ok(self):
        return self.complete or self.allow_partial

    @property
    def frames_per_second(self):
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def problem(self):
        """One line saying what is wrong with the input (None if complete)."""
        if self.complete:
            return None
        parts = []
        if self.missing_frames > self.tolerance_frames:
            parts.append(f"decoded {self.frames} of the {self.expected_frames} frames its {self.declared_from} "
                         f"declares ({self.missing_frames} missing)")
        if self.damaged_packets:
            parts.append(f"{self.damaged_packets} damaged video packet{'s' if self.damaged_packets > 1 else ''} "
                         f"skipped (first: {self.first_damage})")
        if self.out_of_order_frames:
            parts.append(f"{self.out_of_order_frames} frame{'s' if self.out_of_order_frames > 1 else ''} "
                         "with out-of-order timestamps dropped")
        if self.read_error:
            parts.append(f"reading stopped early ({self.read_error})")
        return (f"input {self.input!r} is short or damaged: {'; '.join(parts)}; "
                f"the output has the {self.frames} frames that decoded")

    def as_dict(self):
        report = dataclasses.asdict(self)
        report.update(missing_frames=self.missing_frames, complete=self.complete, ok=self.ok,
                      frames_per_second=self.frames_per_second, warning=self.problem())
        return report

    def text(self):
        flicker = self.flicker_ab
        lines = [f"wrote {self.output}: {self.frames} frames, {self.size[0]}x{self.size[1]}, {self.fps:.3f} fps, "
                 f"audio {self.audio or 'none'}; {self.seconds:.1f} s ({self.frames_per_second:.1f} frames/s)",
                 f"flicker (mean |d a*b*| on static pixels): {flicker['raw']:.3f} without smoothing, "
                 f"{flicker['smoothed']:.3f} with smoothing ({'applied' if self.smoothing else 'not applied'}); "
                 f"{flicker['scene_cuts']} scene cuts"]
        if not self.complete:
            accepted = ("accepted with --allow_partial" if self.allow_partial else
                        "exit status 1; pass --allow_partial to accept a partial film")
            lines.append(f"WARNING {self.problem()} ({accepted})")
        elif self.expected_frames is None:
            lines.append("note: the container declares no length, so a cut-short film could not be detected")
        return "\n".join(lines)


def report_path(output):
    """Where :func:`run` writes the JSON report of a film: ``<output>.json``."""
    output = pathlib.Path(output)
    return output.with_name(output.name + ".json")


def _expected(info, max_frames):
    """``(expected frames or None, tolerance)`` for a run over ``info`` limited to ``max_frames``."""
    expected = info.declared_frames
    if expected is None:
        return None, 0
    slack = info.slack_frames
    if max_frames is not None and max_frames < expected:
        expected, slack = max_frames, 0
    return expected, slack + max(SHORT_TOLERANCE_FRAMES, math.ceil(SHORT_TOLERANCE_FRACTION * expected))


def _colorize_film(source, writer, colorizer, config, expected, progress, guidance=None):
    """Decodes, colorizes and encodes every frame; returns ``(frames written, smoother, stats)``."""
    in_video = source.streams.video[0]
    in_video.thread_type = "AUTO"
    in_audio = source.streams.audio[0] if source.streams.audio else None
    smoother, stats, written = ChromaSmoother(config.smoothing), _DecodeStats(), 0
    frames = _video_frames(source, in_video, in_audio, writer, stats)
    if config.max_frames is not None:
        frames = itertools.islice(frames, config.max_frames)
    with tqdm(total=expected, unit="frame", disable=not progress, desc="colorize film", dynamic_ncols=True) as bar:
        for batch in batching.batched(frames, config.batch_size):
            for frame in _colorize_batch(colorizer, batch, smoother, config.smooth, guidance, written):
                writer.write_frame(frame)
                written += 1
            bar.update(len(batch))
    writer.finish()
    return written, smoother, stats


def _summarize(config, model, info, expected, frames, stats, smoother, transcode, *, seconds):
    expected_frames, tolerance = expected
    return FilmSummary(
        input=str(config.input), output=str(config.output), model=model, frames=frames,
        declared_frames=info.declared_frames, declared_from=info.declared_from, expected_frames=expected_frames,
        tolerance_frames=tolerance, damaged_packets=stats.damaged_packets, first_damage=stats.first_damage,
        read_error=stats.read_error, out_of_order_frames=stats.out_of_order, allow_partial=config.allow_partial,
        fps=float(info.rate), size=[info.width, info.height],
        audio=None if info.audio is None else ("re-encoded to AAC" if transcode else f"copied ({info.audio})"),
        smoothing=dataclasses.asdict(config.smoothing) if config.smooth else None,
        flicker_ab=smoother.report(), seconds=seconds)


def run(config, *, progress=True, colorizer=None, report=True, names=None):
    """Checks the input and output, colorizes the film, publishes it; returns a :class:`FilmSummary`.

    The output is written under a temporary name with the output's suffix
    and renamed when complete, so an interrupted run leaves nothing behind
    and an existing output is untouched until then. With ``report`` the
    summary goes to ``<output>.json`` (atomically).

    Args:
      config: :class:`FilmConfig`.
      progress: show a progress bar.
      colorizer: a loaded :class:`keras_colorize.inference.api.Colorizer` (or
        anything with ``image_size`` and ``predict_ab``); default: load
        ``config.model`` after the input and output have checked out.
      report: write ``<output>.json``.
      names: config field -> what the user typed (``kc-colorize-video``'s flags), for messages.

    Raises:
      ValueError: bad configuration, an input that is not a readable film
        (missing, empty, a still image, audio only, unreadable), an output that
        would overwrite the input, exists, or cannot be written, or no frame
        could be decoded; a bad hints file or reference photo, a point outside
        the frame, hints for a model without hint inputs (``NoHintInputsError``).
        Nothing is written then.
    """
    config.validate()
    start = time.time()
    model = str(config.model) if colorizer is None else "(a loaded colorizer)"
    with _open_source(config.input) as source:
        info = _info(config.input, source)
        check_output(config)
        film_hints, reference = check_guidance(config, info)
        guidance = None
        if config.hints or config.reference:  # a model without hint inputs is refused before anything is written
            if colorizer is None:
                check_model(config.model)
                colorizer = _load_colorizer(config)
            check_guided(colorizer, config, names)
            guidance = FrameGuidance(colorizer, film_hints, reference)
        for stale in _stale_partials(config.output):
            stale.unlink(missing_ok=True)
        expected, tolerance = _expected(info, config.max_frames)
        in_video = source.streams.video[0]
        in_audio = source.streams.audio[0] if source.streams.audio else None
        with fileio.atomic_path(config.output, keep_suffix=True) as tmp:
            writer = _FilmWriter(tmp, config.output, in_video, in_audio, config)  # refuses a non-film container
            try:
                if colorizer is None:
                    check_model(config.model)
                    colorizer = _load_colorizer(config)
                frames, smoother, stats = _colorize_film(source, writer, colorizer, config, expected, progress,
                                                         guidance)
            finally:
                writer.close()
            if frames == 0:
                detail = stats.first_damage or stats.read_error
                raise ValueError(f"input {str(config.input)!r}: no video frame could be decoded"
                                 + (f" ({detail})" if detail else ""))
    summary = _summarize(config, model, info, (expected, tolerance), frames, stats, smoother, writer.transcode,
                         seconds=time.time() - start)
    if report:
        fileio.atomic_write_text(report_path(config.output),
                                 json.dumps({"config": dataclasses.asdict(config), **summary.as_dict()}, indent=2))
    return summary


def colorize_video(colorizer, input_path, output_path, *, smooth=False, smoothing=SmoothingConfig(),
                   batch_size=8, crf=18, preset="veryfast", max_frames=None, allow_partial=False, progress=True):
    """Colorizes a film with a loaded colorizer; returns the summary as a dict (no JSON file written).

    A convenience over :func:`run` for notebooks and benchmarks: an existing
    output is replaced. Keys: input, output, frames, expected_frames,
    missing_frames, complete, ok, warning, fps, size, audio, smoothing,
    flicker_ab, seconds, frames_per_second, ...

    Raises:
      ValueError: as :func:`run`.
    """
    config = FilmConfig(input=str(input_path), output=str(output_path), smooth=smooth, smoothing=smoothing,
                        batch_size=batch_size, crf=crf, preset=preset, max_frames=max_frames,
                        allow_partial=allow_partial, overwrite=True)
    return run(config, progress=progress, colorizer=colorizer, report=False).as_dict()
