"""Exposure model of the fake camera: scene codes -> sensor pixels, and its auto-exposure loop.

The scene is composed in *reflectance codes*: ``uint8`` values ``v`` whose linear reflectance is
``(v / 255) ** GAMMA``. The sensor integrates light linearly,

    signal = (v / 255) ** GAMMA * illumination * shutter_us * gain / FULL_SCALE_EXPOSURE_US

clips it at 1 and encodes it with the same gamma, ``pixel = 255 * min(signal, 1) ** (1 / GAMMA)``.
So brightness (in linear units) is proportional to shutter x gain until it clips. Because codes and
pixels share the gamma, the whole model is one saturating multiply per frame
(:func:`code_multiplier`), fused with the noise pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

GAMMA = 2.2
"""sRGB-like transfer curve of the stored codes and of the output pixels."""
FULL_SCALE_EXPOSURE_US = 5000.0
"""shutter_us x gain at which a white (code 255) surface in full daylight just reaches 255. With the
scene's mean code (~120) AE settles at ~4-5 ms at unity gain in daylight, so the default 2 ms lock
needs a gain of ~2-2.5, and the cloud (40 % light) pushes AE to ~11 ms."""
LINEAR_OF_CODE = ((np.arange(256, dtype=np.float64) / 255.0) ** GAMMA).astype(np.float32)
"""Linear value of each output (or reflectance) code."""
NOISE_BASE = 0.6
NOISE_PER_GAIN = 0.25
"""Sensor noise standard deviation in output levels: ``NOISE_BASE + NOISE_PER_GAIN * gain``
(~0.85 at unity gain, ~4.6 at 16x): read noise amplified by the analogue gain."""


def exposure_scale(shutter_us: float, gain: float, illumination: float) -> float:
    """Factor from linear reflectance to linear sensor signal (1.0 = full scale)."""
    return shutter_us * gain * illumination / FULL_SCALE_EXPOSURE_US


def code_multiplier(scale: float) -> float:
    """The exposure model applied to gamma-encoded codes is one multiply: ``255 * (scale * (v/255)
    ** GAMMA) ** (1/GAMMA) = v * scale ** (1/GAMMA)``, saturated at 255. This is that factor."""
    return scale ** (1.0 / GAMMA)


def exposure_lut(scale: float) -> np.ndarray:
    """``(256,) uint8`` table: reflectance code -> output pixel (the model written out; the camera
    applies the equivalent :func:`code_multiplier` in one saturating pass)."""
    signal = np.minimum(LINEAR_OF_CODE.astype(np.float64) * scale, 1.0)
    return np.round(255.0 * signal ** (1.0 / GAMMA)).astype(np.uint8)


def noise_sigma(gain: float) -> float:
    """Sensor noise (standard deviation, output levels) at ``gain``."""
    return NOISE_BASE + NOISE_PER_GAIN * gain


def split_exposure(
    product_us: float,
    max_shutter_us: float,
    shutter_range_us: tuple[float, float],
    gain_range: tuple[float, float],
) -> tuple[float, float]:
    """Shutter and gain for an exposure product: longest shutter first (up to ``max_shutter_us``),
    then gain; both clamped to the sensor's ranges."""
    s_lo, s_hi = shutter_range_us
    g_lo, g_hi = gain_range
    shutter = min(max(product_us / g_lo, s_lo), min(max_shutter_us, s_hi))
    gain = min(max(product_us / shutter, g_lo), g_hi)
    return shutter, gain


@dataclass(slots=True)
class AutoExposure:
    """A simple AE loop: each frame moves the exposure product part of the way to the target.

    The measured mean output level (0..1) is converted to linear light, the ratio to the target
    gives the product that would hit it, and ``speed`` of that step (in log terms) is taken, so the
    loop settles in ~5-10 frames without overshooting on clipped frames.
    """

    target: float = 110.0 / 255.0
    """Mean output level AE aims for (about mid-grey in gamma-encoded terms)."""
    speed: float = 0.5
    """Fraction of the log-exposure error corrected per frame."""
    max_step: float = 8.0
    """Largest factor the product may change by in one frame (dark or covered lens)."""

    def next_product(self, product_us: float, measured_mean: float) -> float:
        """Exposure product (shutter x gain) for the next frame."""
        measured = max(measured_mean, 1.0 / 255.0)
        wanted = (self.target / measured) ** GAMMA
        step = math.exp(self.speed * math.log(min(max(wanted, 1.0 / self.max_step), self.max_step)))
        return product_us * step
