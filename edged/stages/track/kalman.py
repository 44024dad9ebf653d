"""A constant-velocity Kalman filter over a whole set of tracks at once.

State per track (one row of ``mean``): ``cx, cy, w, h, vcx, vcy, vw, vh`` in pixels and pixels per
frame; of each track's ``8 x 8`` covariance only the non-zero ``2 x 2`` blocks are kept (below). The
measurement is ``cx, cy, w, h``.
Noise standard deviations scale with the box size (a far, small car moves fewer pixels than a near
one), weighted by ``std_position`` and ``std_velocity`` as in ByteTrack/BoT-SORT.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

_NDIM = 4


@dataclass(frozen=True, slots=True)
class KalmanNoise:
    """Size-relative noise weights (ByteTrack uses 1/20 and 1/160)."""

    std_position: float = 1.0 / 20.0
    std_velocity: float = 1.0 / 160.0
    std_init_velocity: float = 10.0 / 160.0
    """Centre-velocity standard deviation of a new track, fraction of box size per frame (ByteTrack:
    10/160); the size velocity always starts at ``10 * std_velocity``."""


def _size_scale(mean: np.ndarray) -> np.ndarray:
    """``(N, 4)`` of ``w, h, w, h`` per track, floored at one pixel."""
    wh = np.maximum(mean[:, 2:4], 1.0)
    return np.concatenate([wh, wh], axis=1)


def _process_noise(mean: np.ndarray, dt: float, noise: KalmanNoise) -> np.ndarray:
    """``(N, 8)`` variances a step of ``dt`` frames adds, from the sizes before the step (positions, then
    velocities)."""
    wh = np.maximum(mean[:, 2:4], 1.0)
    q = np.concatenate((wh, wh, wh, wh), axis=1)
    q *= _noise_weights(noise.std_position, noise.std_velocity)
    q **= 2
    q *= max(dt, 1e-6)
    return q


@functools.lru_cache(maxsize=8)
def _noise_weights(std_position: float, std_velocity: float) -> np.ndarray:
    """``std_position`` for the four positions, ``std_velocity`` for the four velocities (read-only)."""
    out = np.array([std_position] * _NDIM + [std_velocity] * _NDIM)
    out.flags.writeable = False
    return out


# Blocks: with diagonal noise and a measurement of the positions alone, each of the four coordinates is
# filtered on its own and the 8 x 8 covariance is only ever four 2 x 2 blocks. The tracker keeps just
# those, as ``(N, 3, 4)``: position variance, position-velocity covariance and velocity variance per
# coordinate (``cx, cy, w, h``). The functions below do the arithmetic of the full 8 x 8 filter on the
# entries that are not zero.
POS_VAR, POS_VEL, VEL_VAR = 0, 1, 2
"""Rows of a block covariance."""


def initiate_blocks(measurements: np.ndarray, noise: KalmanNoise) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from ``(N, 4)`` ``cx, cy, w, h`` measurements: zero velocity, wide velocity prior."""
    z = np.asarray(measurements, dtype=np.float64).reshape(-1, _NDIM)
    mean = np.concatenate([z, np.zeros_like(z)], axis=1)
    scale = _size_scale(mean)
    # Position velocity starts uncertain (objects enter moving); size velocity starts near zero, so
    # a box that changes shape under occlusion does not set a track shrinking or growing.
    vel = np.concatenate([noise.std_init_velocity * scale[:, :2], 10.0 * noise.std_velocity * scale[:, 2:]], axis=1)
    cov = np.zeros((z.shape[0], 3, _NDIM))
    cov[:, POS_VAR] = (2.0 * noise.std_position * scale) ** 2
    cov[:, VEL_VAR] = vel**2
    return mean, cov


def predict_blocks(mean: np.ndarray, cov: np.ndarray, dt: float, noise: KalmanNoise) -> None:
    """Advance every track by ``dt`` frames in place (fractional, or > 1 after dropped frames)."""
    n = mean.shape[0]
    if n == 0:
        return
    q = _process_noise(mean, dt, noise)
    mean[:, :_NDIM] += dt * mean[:, _NDIM:]
    # F P F^T: the row step gives pos + dt cross and cross + dt vel (both from the old values), then the
    # column step adds dt (new cross) to pos
    cov[:, :VEL_VAR] += dt * cov[:, POS_VEL:]
    cov[:, POS_VAR] += dt * cov[:, POS_VEL]
    cov[:, ::2] += q.reshape(n, 2, _NDIM)


def update_blocks(
    mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray, noise: KalmanNoise
) -> tuple[np.ndarray, np.ndarray]:
    """Correct each track (row ``i``) with its measurement ``measurements[i]`` (``cx, cy, w, h``); new arrays."""
    if mean.shape[0] == 0:
        return mean, cov
    z = np.asarray(measurements, dtype=np.float64).reshape(-1, _NDIM)
    wh = np.maximum(mean[:, 2:4], 1.0)
    r = np.concatenate((wh, wh), axis=1)
    r *= noise.std_position
    r **= 2
    inverse = 1.0 / (cov[:, POS_VAR] + r)  # the innovation covariance is diagonal
    gain = cov[:, :2] * inverse[:, None, :]  # (N, 2, 4): position gain, velocity gain
    residual = z - mean[:, :_NDIM]
    new_mean = mean + (gain * residual[:, None, :]).reshape(-1, 2 * _NDIM)
    new_cov = np.empty_like(cov)
    # P - K H P: position variance and velocity variance ...
    new_cov[:, ::2] = cov[:, ::2] - gain * cov[:, :2]
    # ... and the two off-diagonal entries, which differ in floating point: their mean keeps P symmetric
    cross = cov[:, POS_VEL, None, :] - gain * cov[:, 1::-1]
    new_cov[:, POS_VEL] = (cross[:, 0] + cross[:, 1]) * 0.5
    return new_mean, new_cov
