"""Shared steps of the build tools: the detector's letterbox as float input, and a traced function to TFLite.

Nothing under ``edged/`` imports this; tensorflow is imported only when converting.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from typing import Any

import cv2
import numpy as np


def letterbox_rgb(bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """As the detector does: letterbox with black into ``size`` (w, h), RGB float32 0-255."""
    from edged.stages.detect.detector import letterbox

    img, *_ = letterbox(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size, 0)
    return img.astype(np.float32)


def representative(images: list[np.ndarray], size: tuple[int, int]) -> Callable[[], Iterator[list[np.ndarray]]]:
    """The calibration batches of ``images`` letterboxed to ``size``, as TFLiteConverter wants them."""
    def batches() -> Iterator[list[np.ndarray]]:
        for bgr in images:
            yield [letterbox_rgb(bgr, size)[None]]

    return batches


def full_int8(conv: Any, batches: Callable[[], Iterator[list[np.ndarray]]]) -> None:
    """Set a TFLiteConverter to full int8 (int8 input and outputs, int8 builtin ops only), calibrated on ``batches``."""
    import tensorflow as tf

    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = batches
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8


def convert(cf: Any, size: tuple[int, int], images: list[np.ndarray] | None) -> bytes:
    """TFLite flatbuffer of a concrete function: float32, or full int8 (int8 input and outputs)
    calibrated on ``images`` letterboxed to ``size`` when given."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_concrete_functions([cf])
    if images is not None:
        full_int8(conv, representative(images, size))
    return conv.convert()


def input_size(ap: argparse.ArgumentParser, size: list[int]) -> tuple[int, int]:
    """A build tool's ``--size W H``, refused (one line, exit 2) unless both are multiples of 32."""
    w, h = size
    if w % 32 or h % 32:
        ap.error("--size must be multiples of 32")
    return w, h
