"""Train the default plate/vehicle/person detector and export it as a full-int8 TFLite model.

    nice -n 10 python -m tools.models.train_detector [--minutes 20] [--out models]

The network ("edged-det"): a depthwise-separable backbone (strides 2-32), a light top-down
feature pyramid and three anchor-free YOLO-style heads at strides 8, 16 and 32. Each cell predicts
a box (centre offset within [-0.5, 1.5] cells, width/height as ``5 stride (2 sigmoid)^2``) and class
scores; an object trains the level matching its size, at the cell holding its centre and the
neighbours its centre is near (as YOLOv5). Loss: (1 - GIoU) on positives + BCE on class scores.

Training runs on 256 x 256 crops (the net is fully convolutional), on CPU, for a fixed wall-clock
budget; the exported model takes the 640 x 384 letterboxed frame and outputs the three raw grid
maps (layout ``yolo_grid``, decoded by ``edged.stages.detect.decoders.decode_yolo_grid``). Export is full int8 (int8 input
and output) with TFLiteConverter, calibrated on 200 letterboxed fake-camera frames and plate
photos. Data: ``tools/models/detector_data.py``. Everything is seeded; run time depends on the machine,
so the number of steps reached is printed and written to ``models/edged_det.json``.

Needs tensorflow (the ``models`` extra).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[2]
STRIDES = (8, 16, 32)
BASE_PER_STRIDE = 5.0
"""Box-size base of a level = 5 x its stride (40, 80, 160 px): predicted sizes span 0-4x the base.
The runtime decoder (layout ``yolo_grid``) uses the same rule."""
BASES = tuple(BASE_PER_STRIDE * s for s in STRIDES)
LEVEL_LIMITS = (32.0, 96.0)
"""Objects whose longer side (model pixels) is below 32 train the stride-8 level, below 96 the
stride-16 level, else the stride-32 one."""
INPUT_WH = (640, 384)
TRAIN_SIZE = 256


# ------------------------------------------------------------------------------------------ model
def build_backbone(num_classes: int, h: int | None = None, w: int | None = None):
    """Keras model image (0-1 RGB) -> list of raw head maps ``(B, Hl, Wl, 4 + C)``, one per level."""
    import tensorflow as tf
    from tensorflow.keras import layers as L

    def cbr(x, ch, k=1, s=1):
        x = L.Conv2D(ch, k, s, padding="same", use_bias=False)(x)
        x = L.BatchNormalization()(x)
        return L.ReLU()(x)

    def ds(x, ch, s=1):
        y = L.DepthwiseConv2D(3, s, padding="same", use_bias=False)(x)
        y = L.BatchNormalization()(y)
        y = L.ReLU()(y)
        y = cbr(y, ch)
        if s == 1 and x.shape[-1] == ch:
            y = L.Add()([x, y])
        return y

    inp = tf.keras.Input((h, w, 3))
    x = cbr(inp, 16, 3, 2)  # /2
    x = ds(x, 32, 2)  # /4
    x = ds(x, 32)
    p3 = ds(x, 64, 2)  # /8
    p3 = ds(ds(p3, 64), 64)
    p4 = ds(p3, 96, 2)  # /16
    p4 = ds(ds(p4, 96), 96)
    p5 = ds(p4, 128, 2)  # /32
    p5 = ds(ds(p5, 128), 128)
    t5 = cbr(p5, 96)
    f4 = L.Add()([p4, L.UpSampling2D(2)(t5)])
    f4 = ds(f4, 96)
    t4 = cbr(f4, 64)
    f3 = L.Add()([p3, L.UpSampling2D(2)(t4)])
    f3 = ds(f3, 64)
    outs = []
    for f in (f3, f4, p5):
        hf = ds(f, int(f.shape[-1]))
        outs.append(L.Conv2D(4 + num_classes, 1, padding="same")(hf))
    return tf.keras.Model(inp, outs)


def decode_level(raw, stride: int, base: float):
    """Raw map (B, H, W, 4 + C) -> (B, H*W, 4) cx, cy, w, h in pixels and (B, H*W, C) logits."""
    import tensorflow as tf

    shape = tf.shape(raw)
    hh, ww = shape[1], shape[2]
    gy, gx = tf.meshgrid(tf.range(hh), tf.range(ww), indexing="ij")
    grid = tf.cast(tf.stack([gx, gy], -1), tf.float32)[None]
    xy = (tf.sigmoid(raw[..., :2]) * 2.0 - 0.5 + grid) * stride
    wh = tf.square(tf.sigmoid(raw[..., 2:4]) * 2.0) * base
    box = tf.concat([xy, wh], -1)
    n = hh * ww
    return tf.reshape(box, [shape[0], n, 4]), tf.reshape(raw[..., 4:], [shape[0], n, -1])


# ---------------------------------------------------------------------------------------- targets
def level_shapes(size_hw: tuple[int, int]) -> list[tuple[int, int]]:
    return [(size_hw[0] // s, size_hw[1] // s) for s in STRIDES]


def build_targets(boxes: np.ndarray, labels: np.ndarray, size_hw: tuple[int, int], num_classes: int) -> np.ndarray:
    """Dense targets ``(N, 4 + C + 1)``: box (x1, y1, x2, y2 px), one-hot class, positive flag."""
    shapes = level_shapes(size_hw)
    maps = [np.zeros((h, w, 5 + num_classes), np.float32) for h, w in shapes]
    areas = [np.full((h, w), np.inf, np.float32) for h, w in shapes]
    for box, label in zip(boxes, labels, strict=True):
        bw, bh = box[2] - box[0], box[3] - box[1]
        side = max(bw, bh)
        lvl = 0 if side < LEVEL_LIMITS[0] else (1 if side < LEVEL_LIMITS[1] else 2)
        s = STRIDES[lvl]
        h, w = shapes[lvl]
        cx, cy = (box[0] + box[2]) / 2 / s, (box[1] + box[3]) / 2 / s
        gx, gy = int(cx), int(cy)
        fx, fy = cx - gx, cy - gy
        cells = [(gx, gy), (gx - 1 if fx < 0.5 else gx + 1, gy), (gx, gy - 1 if fy < 0.5 else gy + 1)]
        for x, y in cells:
            if 0 <= x < w and 0 <= y < h and bw * bh < areas[lvl][y, x]:
                areas[lvl][y, x] = bw * bh
                m = maps[lvl][y, x]
                m[:] = 0
                m[:4] = box
                m[4 + label] = 1.0
                m[-1] = 1.0
    return np.concatenate([m.reshape(-1, 5 + num_classes) for m in maps])


# ------------------------------------------------------------------------------------------ train
def giou(a, b):
    """GIoU of boxes (..., 4) x1, y1, x2, y2."""
    import tensorflow as tf

    ix1, iy1 = tf.maximum(a[..., 0], b[..., 0]), tf.maximum(a[..., 1], b[..., 1])
    ix2, iy2 = tf.minimum(a[..., 2], b[..., 2]), tf.minimum(a[..., 3], b[..., 3])
    inter = tf.maximum(ix2 - ix1, 0.0) * tf.maximum(iy2 - iy1, 0.0)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter + 1e-7
    cx1, cy1 = tf.minimum(a[..., 0], b[..., 0]), tf.minimum(a[..., 1], b[..., 1])
    cx2, cy2 = tf.maximum(a[..., 2], b[..., 2]), tf.maximum(a[..., 3], b[..., 3])
    hull = (cx2 - cx1) * (cy2 - cy1) + 1e-7
    return inter / union - (hull - union) / hull


def train(minutes: float, out: Path, seed: int, init: Path | None = None, plate: bool = False) -> dict:
    """Train for ``minutes``; ``plate``: fine-tune the plate class alone on 320x192 vehicle crops
    (:func:`plate_set`), at a lower learning rate, into ``edged_plate.weights.h5``."""
    import tensorflow as tf

    from tools.models.detector_data import CLASSES, TRAIN_SEEDS, make_set

    tf.keras.utils.set_random_seed(seed)
    nc = len(CLASSES)
    size_hw = (CROP_WH[1], CROP_WH[0]) if plate else (TRAIN_SIZE, TRAIN_SIZE)
    t0 = time.time()
    cache = Path(os.environ.get("EDGED_DET_CACHE", "")) if os.environ.get("EDGED_DET_CACHE") else None
    if cache and cache.exists():
        with np.load(cache) as z:
            images, targets = z["images"], z["targets"]
    else:
        samples = (plate_set(seed) if plate else
                   make_set(n_fake=3600, n_plates=1400, seeds=TRAIN_SEEDS, seed=seed, size=TRAIN_SIZE))
        images = np.stack([s.image[:, :, ::-1] for s in samples])  # RGB
        targets = np.stack([build_targets(s.boxes, s.labels, size_hw, nc) for s in samples])
        if cache:
            np.savez(cache, images=images, targets=targets)
    print(f"data: {len(images)} crops in {time.time() - t0:.0f} s", flush=True)

    model = build_backbone(nc)
    if init:
        model.load_weights(str(init))
    batch = 16
    budget_s = minutes * 60
    lr0 = 5e-4 if plate else 2e-3
    n_cls = 1 if plate else nc  # plate fine-tuning trains the plate score only (the crop model uses no other)
    opt = tf.keras.optimizers.Adam(lr0)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            raws = model(x, training=True)
            boxes, logits = [], []
            for raw, s, b in zip(raws, STRIDES, BASES, strict=True):
                bx, lg = decode_level(raw, s, b)
                boxes.append(bx)
                logits.append(lg)
            box = tf.concat(boxes, 1)
            logit = tf.concat(logits, 1)
            xyxy = tf.concat([box[..., :2] - box[..., 2:] / 2, box[..., :2] + box[..., 2:] / 2], -1)
            pos = y[..., -1]
            npos = tf.maximum(tf.reduce_sum(pos), 1.0)
            box_loss = tf.reduce_sum((1.0 - giou(xyxy, y[..., :4])) * pos) / npos
            cls_loss = tf.reduce_sum(
                tf.nn.sigmoid_cross_entropy_with_logits(labels=y[..., 4 : 4 + n_cls], logits=logit[..., :n_cls])
            ) / npos
            loss = 5.0 * box_loss + cls_loss
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss, box_loss, cls_loss

    rng = np.random.default_rng(seed)
    n = len(images)
    steps = 0
    t_train = time.time()
    while (frac := (time.time() - t_train) / budget_s) < 1.0:
        opt.learning_rate.assign(lr0 * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * frac))))  # cosine over the time budget
        idx = rng.integers(0, n, batch)
        x = images[idx].astype(np.float32) / 255.0
        y = targets[idx]
        flip = rng.random(batch) < 0.5  # horizontal flip, boxes mirrored
        x[flip] = x[flip, :, ::-1]
        loss, bl, cl = step(tf.constant(x), tf.constant(_flip_targets(y, flip, size_hw)))
        steps += 1
        if steps % 100 == 0:
            rate = steps / (time.time() - t_train)
            print(f"step {steps} loss {float(loss):.3f} box {float(bl):.3f} cls {float(cl):.3f} ({rate:.1f} steps/s)", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(out / ("edged_plate.weights.h5" if plate else "edged_det.weights.h5")))
    info = {"steps": steps, "batch": batch, "train_minutes": round((time.time() - t_train) / 60, 1), "crops": n,
            "seed": seed, "classes": list(CLASSES), "init": str(init.name) if init else None}
    if plate:
        info.update(input_wh=list(CROP_WH), learning_rate=lr0, trained_classes=["plate"])
    print(info, flush=True)
    return info


def _flip_targets(y: np.ndarray, flip: np.ndarray, size_hw: tuple[int, int] = (TRAIN_SIZE, TRAIN_SIZE)) -> np.ndarray:
    """Mirror dense targets of flipped samples: cells mirror within each level, boxes mirror in x."""
    if not flip.any():
        return y
    y = y.copy()
    start = 0
    width = size_hw[1]
    for h, w in level_shapes(size_hw):
        n = h * w
        part = y[flip, start : start + n].reshape(-1, h, w, y.shape[-1])[:, :, ::-1].copy()
        x1 = part[..., 0].copy()
        part[..., 0] = np.where(part[..., -1] > 0, width - part[..., 2], 0)
        part[..., 2] = np.where(part[..., -1] > 0, width - x1, 0)
        y[flip, start : start + n] = part.reshape(-1, n, y.shape[-1])
        start += n
    return y


# ----------------------------------------------------------------------------------------- export
LOGIT_CLIP = 12.0
"""Exported class logits are clipped to +/-12 (scores 6e-6 .. 0.999994) by a ReLU6 fused into
the class conv, so int8 spends its levels on that range rather than on -30 background logits."""


def inference_function(weights: Path, num_classes: int, input_wh: tuple[int, int] = INPUT_WH):
    """tf.function: (1, H, W, 3) RGB 0-1 (default 384 x 640) -> per stride (8, 16, 32) a box map (1, H, W, 4) and a
    class-logit map (1, H, W, C).

    The grid decode (sigmoid, cell offsets, sizes) is left to the runtime (layout ``yolo_grid``):
    inside an int8 model it would squeeze absolute coordinates into 256 levels (2.5 px steps at
    640 px, more through the intermediate tensors), too coarse for 4 px high plates. Each head's
    last 1x1 conv is split in two so box offsets and class logits get their own int8 scales.
    """
    import tensorflow as tf

    w, h = input_wh
    model = build_backbone(num_classes, h, w)
    model.load_weights(str(weights))
    heads = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.Conv2D) and layer.filters == 4 + num_classes]
    features = tf.keras.Model(model.input, [layer.input for layer in heads])
    step = 2 * LOGIT_CLIP / 6.0
    params = []
    for layer in heads:
        k, b = layer.get_weights()
        params.append((tf.constant(k[..., :4]), tf.constant(b[:4]), tf.constant(k[..., 4:] / step),
                       tf.constant((b[4:] + LOGIT_CLIP) / step)))

    @tf.function(input_signature=[tf.TensorSpec([1, h, w, 3], tf.float32, name="image")])
    def fn(image):
        outs = []
        for feat, (kb, bb, kc, bc) in zip(features(image, training=False), params, strict=True):
            outs.append(tf.nn.conv2d(feat, kb, 1, "SAME") + bb)
            outs.append(tf.nn.relu6(tf.nn.conv2d(feat, kc, 1, "SAME") + bc) * step - LOGIT_CLIP)
        return outs

    return fn


def calibration_frames(n: int = 200) -> list[np.ndarray]:
    """Letterboxed 640x384 RGB 0-1 frames: fake-scene training seeds and plate photos."""
    import cv2

    from edged.stages.detect.detector import letterbox
    from tools.eval.face_photos import backgrounds
    from tools.models.detector_data import TRAIN_SEEDS, fake_frames, plate_photo_sample

    out = []
    for s in list(TRAIN_SEEDS)[: n // 10]:
        for img, _, _ in fake_frames(s, 8):
            out.append(letterbox(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), INPUT_WH, 114)[0])
    rng = np.random.default_rng(1)
    bgs = backgrounds()
    while len(out) < n:
        smp = plate_photo_sample(rng, bgs, 384)
        out.append(letterbox(cv2.cvtColor(smp.image, cv2.COLOR_BGR2RGB), INPUT_WH, 114)[0])
    return [(o.astype(np.float32) / 255.0)[None] for o in out]


def export(weights: Path, out: Path) -> dict:
    from tools.models.build_face_model import float_tflite, int8_tflite
    from tools.models.detector_data import CLASSES

    fn = inference_function(weights, len(CLASSES))
    float_bytes = float_tflite(fn)
    (out / "edged_det_float.tflite").write_bytes(float_bytes)
    frames = calibration_frames()
    (out / "edged_det_int8.tflite").write_bytes(int8_tflite(fn, lambda: ([f] for f in frames)))
    return {"float_bytes": len(float_bytes), "int8_bytes": (out / "edged_det_int8.tflite").stat().st_size}


CROP_WH = (320, 192)
"""Input of the plate model that searches inside vehicle boxes: a near car's box (400 px) shrinks
to it 1.25x, a far one (100 px) is enlarged 3.2x, so plates land in the 12-110 px the net trained on."""


PLATE_SET = {"vehicles": 1400, "photos": 800, "fake_seeds": 30, "fake_frames_per_seed": 12}
"""The plate fine-tuning set: synthetic plates on real training vehicles (``tools.models.plate_data``),
synthetic plates on photos letterboxed as a crop, and fake-scene vehicle crops with their plates."""


def plate_set(seed: int) -> list:
    """320x192 crops for plate fine-tuning (BGR samples, plate boxes), shuffled."""
    from edged.stages.detect.detector import letterbox
    from tools.eval.face_photos import backgrounds
    from tools.models import plate_data
    from tools.models.detector_data import TRAIN_SEEDS, Sample, photometric, plate_photo_sample

    rng = np.random.default_rng(seed + 1)
    samples = plate_data.vehicle_plate_set(PLATE_SET["vehicles"], seed)
    bgs = backgrounds()
    for _ in range(PLATE_SET["photos"]):
        smp = plate_photo_sample(rng, bgs, int(rng.choice([256, 320, 384])))
        canvas, sx, sy, px, py = letterbox(smp.image, CROP_WH, 114)
        b = smp.boxes * [sx, sy, sx, sy] + [px, py, px, py]
        samples.append(Sample(photometric(canvas, rng), b.astype(np.float32), smp.labels))
    seeds = list(TRAIN_SEEDS)[: PLATE_SET["fake_seeds"]]
    for c in plate_data.fake_scene_crops(seeds, PLATE_SET["fake_frames_per_seed"]):
        samples.append(Sample(photometric(c.image, rng), c.boxes, np.zeros(len(c.boxes), np.int64)))
    return [samples[i] for i in rng.permutation(len(samples))]


def crop_calibration_frames(n: int = 200, real_vehicles: bool = False) -> list[np.ndarray]:
    """Letterboxed 320x192 RGB 0-1 crops: fake-scene vehicles and plate photos (and, for the
    plate-tuned weights, a quarter of crops of the real training vehicles)."""
    import cv2

    from edged.stages.detect.detector import letterbox
    from tools.eval.face_photos import backgrounds
    from tools.models.detector_data import TRAIN_SEEDS, fake_frames, plate_photo_sample

    out = []
    if real_vehicles:
        from tools.models import plate_data

        out += [cv2.cvtColor(s.image, cv2.COLOR_BGR2RGB) for s in plate_data.vehicle_plate_set(n // 4, 7)]
    for s in list(TRAIN_SEEDS)[: n // 20]:
        for img, boxes, labels in fake_frames(s, 8):
            for (x1, y1, x2, y2) in boxes[:3]:
                crop = img[int(y1) : int(y2) + 1, int(x1) : int(x2) + 1]
                if crop.shape[0] >= 16 and crop.shape[1] >= 16:
                    out.append(letterbox(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB), CROP_WH, 114)[0])
    rng = np.random.default_rng(2)
    bgs = backgrounds()
    while len(out) < n:
        smp = plate_photo_sample(rng, bgs, 256)
        out.append(letterbox(cv2.cvtColor(smp.image, cv2.COLOR_BGR2RGB), CROP_WH, 114)[0])
    return [(o.astype(np.float32) / 255.0)[None] for o in out[:n]]


def export_crop_model(weights: Path, out: Path, real_vehicles: bool = False) -> dict:
    """The same weights at ``CROP_WH`` input, full int8, for plate search in vehicle crops."""
    from tools.models.build_face_model import int8_tflite
    from tools.models.detector_data import CLASSES

    fn = inference_function(weights, len(CLASSES), CROP_WH)
    frames = crop_calibration_frames(real_vehicles=real_vehicles)
    path = out / f"edged_det_crop_{CROP_WH[0]}x{CROP_WH[1]}_int8.tflite"
    path.write_bytes(int8_tflite(fn, lambda: ([f] for f in frames)))
    return {"crop_int8_bytes": path.stat().st_size}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=20.0, help="wall-clock training budget")
    ap.add_argument("--out", type=Path, default=ROOT / "models")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--export-only", action="store_true", help="export the saved weights again")
    ap.add_argument("--init", type=Path, help="start from these weights (a previous run) instead of random")
    ap.add_argument("--plate", action="store_true",
                    help="fine-tune the plate class on vehicle crops (start from --init, e.g. "
                         "models/edged_det.weights.h5) into edged_plate.weights.h5 and export only the crop model")
    args = ap.parse_args()
    if args.plate and args.init is None and not args.export_only:
        args.init = ROOT / "models" / "edged_det.weights.h5"
    name = "edged_plate" if args.plate else "edged_det"
    info_path = args.out / f"{name}.json"
    info = json.loads(info_path.read_text()) if args.export_only and info_path.exists() else {}
    if not args.export_only:
        info = train(args.minutes, args.out, args.seed, args.init, plate=args.plate)
    if not args.plate:
        info.update(export(args.out / "edged_det.weights.h5", args.out))
    info.update(export_crop_model(args.out / f"{name}.weights.h5", args.out, real_vehicles=args.plate))
    info_path.write_text(json.dumps(info, indent=1) + "\n")
    print(info)


if __name__ == "__main__":
    main()
