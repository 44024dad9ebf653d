"""A constant-velocity Kalman filter over a whole set of tracks at once.

State per track (one row of ``mean``): ``cx, cy, w, h, vcx, vcy, vw, vh`` in pixels and pixels per
frame; ``cov`` stacks one ``8 x 8`` covariance per track. The measurement is ``cx, cy, w, h``.
Noise standard deviations scale with the box size (a far, small car moves fewer pixels than a near
one), weighted by ``std_position`` and ``std_velocity`` as in ByteTrack/BoT-SORT.
"""

from __future__ import annotations

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


def _diag(std: np.ndarray) -> np.ndarray:
    """Stack of diagonal matrices from ``(N, k)`` standard deviations."""
    n, k = std.shape
    out = np.zeros((n, k, k), dtype=np.float64)
    idx = np.arange(k)
    out[:, idx, idx] = std**2
    return out


def initiate(measurements: np.ndarray, noise: KalmanNoise) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from ``(N, 4)`` ``cx, cy, w, h`` measurements: zero velocity, wide velocity prior."""
    z = np.asarray(measurements, dtype=np.float64).reshape(-1, _NDIM)
    mean = np.concatenate([z, np.zeros_like(z)], axis=1)
    scale = _size_scale(mean)
    # Position velocity starts uncertain (objects enter moving); size velocity starts near zero, so
    # a box that changes shape under occlusion does not set a track shrinking or growing.
    vel = np.concatenate([noise.std_init_velocity * scale[:, :2], 10.0 * noise.std_velocity * scale[:, 2:]], axis=1)
    std = np.concatenate([2.0 * noise.std_position * scale, vel], axis=1)
    return mean, _diag(std)


def predict(
    mean: np.ndarray, cov: np.ndarray, dt: float, noise: KalmanNoise
) -> tuple[np.ndarray, np.ndarray]:
    """Advance every track by ``dt`` frames (``dt`` may be fractional or > 1 after dropped frames).

    ``F P F^T`` is done blockwise (F = [[I, dt I], [0, I]]): no 8x8 products, no temporaries per track.
    """
    if mean.shape[0] == 0:
        return mean, cov
    scale = _size_scale(mean)
    new_mean = mean.copy()
    new_mean[:, :_NDIM] += dt * mean[:, _NDIM:]
    new_cov = cov.copy()
    new_cov[:, :_NDIM, :] += dt * cov[:, _NDIM:, :]
    new_cov[:, :, :_NDIM] += dt * new_cov[:, :, _NDIM:]
    idx = np.arange(2 * _NDIM)
    step = max(dt, 1e-6)
    new_cov[:, idx[:_NDIM], idx[:_NDIM]] += (noise.std_position * scale) ** 2 * step
    new_cov[:, idx[_NDIM:], idx[_NDIM:]] += (noise.std_velocity * scale) ** 2 * step
    return new_mean, new_cov


def update(
    mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray, noise: KalmanNoise
) -> tuple[np.ndarray, np.ndarray]:
    """Correct each track (row ``i``) with its measurement ``measurements[i]`` (``cx, cy, w, h``)."""
    if mean.shape[0] == 0:
        return mean, cov
    z = np.asarray(measurements, dtype=np.float64).reshape(-1, _NDIM)
    scale = _size_scale(mean)[:, :_NDIM]
    innovation_cov = cov[:, :_NDIM, :_NDIM].copy()
    idx = np.arange(_NDIM)
    innovation_cov[:, idx, idx] += (noise.std_position * scale) ** 2
    # gain^T = S^-1 (P H^T)^T = S^-1 P[:4, :] since P is symmetric.
    gain = np.linalg.solve(innovation_cov, cov[:, :_NDIM, :]).transpose(0, 2, 1)
    residual = z - mean[:, :_NDIM]
    new_mean = mean + np.einsum("nij,nj->ni", gain, residual)
    new_cov = cov - gain @ cov[:, :_NDIM, :]
    new_cov = 0.5 * (new_cov + new_cov.transpose(0, 2, 1))
    return new_mean, new_cov
