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
import itertools
import json
import math
import pathlib
import time

from tqdm import tqdm

from keras_colorize import cli
from keras_colorize import fileio
from keras_colorize import pretrained
from keras_colorize.inference import batching
from keras_colorize.inference import film_io
from keras_colorize.inference import film_smoothing
from keras_colorize.inference import model_spec

av = cli.require_extra("av", "video")  # PyAV is optional: without it, MissingExtra names the [video] extra

# Part of this module's API (film.SmoothingConfig(...), film.inspect(path)), defined beside it.
SmoothingConfig = film_smoothing.SmoothingConfig
ChromaSmoother = film_smoothing.ChromaSmoother
FilmInfo = film_io.FilmInfo
inspect = film_io.inspect
report_path = film_io.report_path

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
      smoothing: :class:`film_smoothing.SmoothingConfig`.
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
    smoothing: film_smoothing.SmoothingConfig = film_smoothing.SmoothingConfig()
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
                raise ValueError(f"{cli.flag_label(names, field)} must be given, got {getattr(self, field)!r}")
        _check_positive_int(self.batch_size, cli.flag_label(names, "batch_size"))
        _check_positive_int(self.max_frames, cli.flag_label(names, "max_frames"), optional=True)
        if isinstance(self.crf, bool) or not isinstance(self.crf, int) or not 0 <= self.crf <= 51:
            raise ValueError(f"{cli.flag_label(names, 'crf')} must be an integer in [0, 51], got {self.crf!r}")
        if self.preset not in X264_PRESETS:
            raise ValueError(f"{cli.flag_label(names, 'preset')} must be one of {', '.join(X264_PRESETS)}, "
                             f"got {self.preset!r}")
        self.smoothing.validate(names)
        for field in ("hints", "reference"):
            value = getattr(self, field)
            if value is not None and not pathlib.Path(value).expanduser().is_file():
                raise ValueError(f"{cli.flag_label(names, field)} {str(value)!r} does not exist or is not a file")




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

    def smooth_or_not(l_small, ab_small):  # the smoother sees every frame: both flicker figures are reported
        smoothed = smoother(l_small, ab_small)
        return smoothed if smooth else ab_small

    frame_guidance = None if guidance is None else [
        guidance(first + i, frame.width, frame.height) for i, frame in enumerate(frames)]
    rgb = colorizer.colorize_lightness([merge.lightness(frame.to_ndarray(format="rgb24")) for frame in frames],
                                       frame_guidance, adjust_ab=smooth_or_not)
    out = []
    for frame, pixels in zip(frames, rgb):
        new = av.VideoFrame.from_ndarray(pixels, format="rgb24")
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
        given = " and ".join(cli.flag_label(labels, f) for f in ("hints", "reference") if getattr(config, f))
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
    smoother, stats, written = film_smoothing.ChromaSmoother(config.smoothing), film_io.DecodeStats(), 0
    frames = film_io.video_frames(source, in_video, in_audio, writer, stats)
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
    with film_io.open_source(config.input) as source:
        info = film_io.info(config.input, source)
        film_io.check_output(config)
        film_hints, reference = check_guidance(config, info)
        guidance = None
        if config.hints or config.reference:  # a model without hint inputs is refused before anything is written
            if colorizer is None:
                check_model(config.model)
                colorizer = _load_colorizer(config)
            check_guided(colorizer, config, names)
            guidance = FrameGuidance(colorizer, film_hints, reference)
        for stale in film_io.stale_partials(config.output):
            stale.unlink(missing_ok=True)
        expected, tolerance = _expected(info, config.max_frames)
        in_video = source.streams.video[0]
        in_audio = source.streams.audio[0] if source.streams.audio else None
        with fileio.atomic_path(config.output, keep_suffix=True) as tmp:
            writer = film_io.FilmWriter(tmp, config.output, in_video, in_audio, config)  # refuses a non-film container
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
        fileio.atomic_write_text(film_io.report_path(config.output),
                                 json.dumps({"config": dataclasses.asdict(config), **summary.as_dict()}, indent=2))
    return summary


def colorize_video(colorizer, input_path, output_path, *, smooth=False, smoothing=film_smoothing.SmoothingConfig(),
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
