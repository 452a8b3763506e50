"""Temporal chroma smoothing of film, and the flicker figure (see :mod:`keras_colorize.inference.film`).

A per-frame colorizer changes its mind between frames; :class:`ChromaSmoother` streams each
frame's predicted a*b* through a motion-aware moving average and tallies the flicker, with and
without it.
"""

import dataclasses
import math

import numpy as np

from keras_colorize import cli


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
            raise ValueError(f"{cli.flag_label(names, 'alpha')} must be in (0, 1], got {self.alpha!r}")
        for name in ("motion_threshold", "cut_threshold", "static_threshold"):
            value = getattr(self, name)
            if not 0.0 < value < math.inf:
                raise ValueError(f"{cli.flag_label(names, name)} must be a positive number, got {value!r}")


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
