"""Colorize film: decode, colorize in batches at full resolution, re-encode with the sound.

The paper colorized 6,651 frames of a 1947 film frame by frame. This module
does the same with PyAV (which ships its own FFmpeg): every frame goes through
the full-resolution path of :class:`keras_colorize.inference.Colorizer`
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
"""

import dataclasses
import os
import pathlib
import time

import av
import numpy as np
from tqdm import tqdm

from keras_colorize import inference

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

    def validate(self):
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha!r}")
        for name in ("motion_threshold", "cut_threshold", "static_threshold"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")


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


def _open_input(path):
    path = pathlib.Path(path)
    if not path.is_file():
        raise ValueError(f"input {str(path)!r} does not exist or is not a file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise ValueError(f"input {str(path)!r}: cannot read it as a video ({e})") from e
    if not container.streams.video:
        container.close()
        raise ValueError(f"input {str(path)!r} has no video stream")
    return container


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


def colorize_video(colorizer, input_path, output_path, *, smooth=False, smoothing=SmoothingConfig(),
                   batch_size=8, crf=18, preset="veryfast", max_frames=None, progress=True):
    """Colorizes a film file; returns a report dict (frames, fps, size, audio, flicker, seconds).

    Args:
      colorizer: a :class:`keras_colorize.inference.Colorizer`.
      input_path: any file FFmpeg reads (gray or colour).
      output_path: destination; written under a temporary name, renamed at the end.
      smooth: apply temporal chroma smoothing to the output.
      smoothing: :class:`SmoothingConfig`.
      batch_size: frames per network call.
      crf, preset: libx264 quality (lower crf = better) and speed.
      max_frames: stop after this many frames (None = all).

    Raises:
      ValueError: unreadable input, no video stream, bad arguments, or an
        output path equal to the input.
    """
    smoothing.validate()
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    output_path = pathlib.Path(output_path)
    if output_path.resolve() == pathlib.Path(input_path).resolve():
        raise ValueError(f"output {str(output_path)!r} would overwrite the input")
    source = _open_input(input_path)
    start = time.time()
    output_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_path.with_name(f".{output_path.stem}.partial{output_path.suffix}")
    smoother = ChromaSmoother(smoothing)
    frames_written = 0
    try:
        in_video = source.streams.video[0]
        in_video.thread_type = "AUTO"
        in_audio = source.streams.audio[0] if source.streams.audio else None
        try:
            output = av.open(str(tmp), "w")
        except (av.error.FFmpegError, ValueError) as e:
            raise ValueError(f"output {str(output_path)!r}: unsupported container ({e})") from e
        with output:
            rate = in_video.average_rate or in_video.guessed_rate
            out_video = output.add_stream("libx264", rate=rate)
            out_video.width = in_video.codec_context.width
            out_video.height = in_video.codec_context.height
            # 4:2:0 needs even sides; odd-sized scans keep their size in 4:4:4 instead.
            even = out_video.width % 2 == 0 and out_video.height % 2 == 0
            out_video.pix_fmt = "yuv420p" if even else "yuv444p"
            out_video.options = {"crf": str(crf), "preset": preset}
            out_video.time_base = in_video.time_base
            out_audio, transcode = _add_audio(output, in_audio) if in_audio is not None else (None, False)
            total = in_video.frames or None
            if max_frames is not None:
                total = min(total or max_frames, max_frames)
            bar = tqdm(total=total, unit="frame", disable=not progress, desc="colorize film", dynamic_ncols=True)
            batch = []

            def flush():
                nonlocal frames_written
                if not batch:
                    return
                rgbs = [f.to_ndarray(format="rgb24") for f in batch]
                l_full = [inference.lightness(rgb) for rgb in rgbs]
                l_small = np.stack([inference.model_input(l, colorizer.image_size) for l in l_full])
                ab_small = colorizer.predict_ab(l_small)
                for frame, l, ls, ab in zip(batch, l_full, l_small, ab_small):
                    smoothed = smoother(ls, ab)
                    rgb = inference.merge(l, smoothed if smooth else ab)
                    new = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                    new.pts, new.time_base = frame.pts, frame.time_base
                    for packet in out_video.encode(new):
                        output.mux(packet)
                    frames_written += 1
                bar.update(len(batch))
                batch.clear()

            streams = [in_video] + ([in_audio] if in_audio is not None else [])
            done = False
            for packet in source.demux(*streams):
                if done:
                    break
                if packet.stream is in_audio:
                    if transcode:
                        for frame in packet.decode():
                            frame.pts = None
                            for out_packet in out_audio.encode(frame):
                                output.mux(out_packet)
                    elif packet.dts is not None:
                        packet.stream = out_audio
                        output.mux(packet)
                    continue
                for frame in packet.decode():
                    if max_frames is not None and frames_written + len(batch) >= max_frames:
                        done = True
                        break
                    batch.append(frame)
                    if len(batch) >= batch_size:
                        flush()
            flush()
            for packet in out_video.encode(None):
                output.mux(packet)
            if transcode:
                for packet in out_audio.encode(None):
                    output.mux(packet)
            bar.close()
        os.replace(tmp, output_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        source.close()
    if frames_written == 0:
        output_path.unlink(missing_ok=True)
        raise ValueError(f"input {str(input_path)!r}: no video frame could be decoded")
    seconds = time.time() - start
    return {
        "input": str(input_path),
        "output": str(output_path),
        "frames": frames_written,
        "fps": float(rate),
        "size": [out_video.width, out_video.height],
        "audio": None if in_audio is None else ("re-encoded to AAC" if transcode else
                                                f"copied ({in_audio.codec_context.name})"),
        "smoothing": dataclasses.asdict(smoothing) if smooth else None,
        "flicker_ab": smoother.report(),
        "seconds": seconds,
        "frames_per_second": frames_written / seconds if seconds > 0 else 0.0,
    }
