"""Film files through PyAV: what a container declares, the output writer, and the decoding loop.

:func:`inspect` reads what a film's container says (size, rate, declared length, audio) without
decoding it; :func:`check_output` refuses outputs that would overwrite the input or cannot be written;
``FilmWriter`` encodes under a hidden temporary name and copies (or re-encodes) the sound;
:func:`video_frames` decodes, counting what the decoder refused. The run that ties them together
is :func:`keras_colorize.inference.film.run`.
"""

import dataclasses
import fractions
import math
import os
import pathlib

from keras_colorize import cli
from keras_colorize import fileio

av = cli.require_extra("av", "video")  # PyAV is optional: without it, MissingExtra names the [video] extra

#: A length derived from a duration (no frame count in the container) may
#: count this many frames more: durations run to the end of the last frame's
#: display time, which muxers round or guess.
DURATION_SLACK_FRAMES = 2
#: When only the container's overall duration is known (no per-stream frame
#: count or duration), an audio track may outlast the picture by this much.
CONTAINER_DURATION_SLACK_SECONDS = 1.0

# Container formats FFmpeg uses for single image files (a JPEG named .mp4 too).
_IMAGE_FORMATS = ("image2",)

# Audio codecs an MP4/MOV container takes as they are; others are re-encoded to AAC.
_MP4_AUDIO = {"aac", "mp3", "alac", "ac3", "eac3", "opus", "flac"}



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


def open_source(path):
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


def info(path, container):
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
    with open_source(path) as container:
        return info(path, container)


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


def stale_partials(output):
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


class FilmWriter:
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
class DecodeStats:
    """What went wrong while reading: packets the decoder refused, where reading stopped early."""

    damaged_packets: int = 0
    first_damage: str = None
    read_error: str = None
    out_of_order: int = 0  # frames dropped for a timestamp at or before the previous frame's


def video_frames(source, in_video, in_audio, writer, stats):
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


def report_path(output):
    """Where :func:`run` writes the JSON report of a film: ``<output>.json``."""
    output = pathlib.Path(output)
    return output.with_name(output.name + ".json")
