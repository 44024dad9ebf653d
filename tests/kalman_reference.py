"""The full-covariance Kalman filter the tracker's block filter is checked against (tests only).

Same model as :mod:`edged.stages.track.kalman`: state ``cx, cy, w, h, vcx, vcy, vw, vh``, one ``8 x 8``
covariance per track, measurement ``cx, cy, w, h``, noise scaled with the box size.
"""

from __future__ import annotations

import numpy as np

from edged.stages.track.kalman import POS_VAR, POS_VEL, VEL_VAR, KalmanNoise

_NDIM = 4


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
    vel = np.concatenate([noise.std_init_velocity * scale[:, :2], 10.0 * noise.std_velocity * scale[:, 2:]], axis=1)
    std = np.concatenate([2.0 * noise.std_position * scale, vel], axis=1)
    return mean, _diag(std)


def predict(mean: np.ndarray, cov: np.ndarray, dt: float, noise: KalmanNoise) -> tuple[np.ndarray, np.ndarray]:
    """Advance every track by ``dt`` frames: ``F P F^T + Q`` done blockwise (F = [[I, dt I], [0, I]])."""
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


def update(mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray,
           noise: KalmanNoise) -> tuple[np.ndarray, np.ndarray]:
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


def blocks_to_full(cov: np.ndarray) -> np.ndarray:
    """``(N, 8, 8)`` covariances from ``(N, 3, 4)`` blocks."""
    n = cov.shape[0]
    out = np.zeros((n, 2 * _NDIM, 2 * _NDIM))
    idx = np.arange(_NDIM)
    out[:, idx, idx] = cov[:, POS_VAR]
    out[:, idx, idx + _NDIM] = cov[:, POS_VEL]
    out[:, idx + _NDIM, idx] = cov[:, POS_VEL]
    out[:, idx + _NDIM, idx + _NDIM] = cov[:, VEL_VAR]
    return out
