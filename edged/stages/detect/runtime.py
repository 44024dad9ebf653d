"""Load a TFLite model and run it, hiding quantisation.

:class:`TFLiteModel` wraps ai-edge-litert's ``Interpreter`` (``tflite_runtime`` when only that is
installed). ``run`` takes a float or uint8 image batch and returns float32 outputs: an int8/uint8
input tensor is fed ``round(x / scale + zero_point)`` and a quantised output is returned as
``(q - zero_point) * scale``, from the tensor's own quantisation parameters.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RUNTIME_NOTICES = ("INFO: Created TensorFlow Lite XNNPACK delegate",)
"""Lines the TFLite runtime prints to the process's stderr on every start that say nothing is wrong."""


class ModelError(RuntimeError):
    """A model file is missing, corrupt, or does not match its config; the message names the file."""


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise ModelError("no TFLite runtime: install ai-edge-litert (or tflite-runtime)") from None
    return Interpreter


@contextlib.contextmanager
def runtime_notices_held() -> Iterator[None]:
    """Hold back what the TFLite runtime writes to file descriptor 2 meanwhile, then pass it on
    without its :data:`RUNTIME_NOTICES` (warnings and errors stay visible)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no descriptor 2 to borrow: nothing to hold back
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not line.startswith(RUNTIME_NOTICES)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One input or output tensor: its index, shape, dtype and affine quantisation (scale 0: none)."""

    name: str
    index: int
    shape: tuple[int, ...]
    dtype: np.dtype
    scale: float
    zero_point: int
    quantized: bool = False
    """Whether the tensor holds integers standing for ``(q - zero_point) * scale``."""


QUANTIZED_DTYPES = (np.dtype(np.int8), np.dtype(np.uint8), np.dtype(np.int16))


def quantize(values: np.ndarray, scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """``round(values / scale) + zero_point``, saturated to ``dtype``'s range."""
    info = np.iinfo(dtype)
    q = np.round(np.asarray(values, dtype=np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """``(values - zero_point) * scale`` as float32."""
    return (values.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def _tensor_info(detail: dict[str, Any]) -> TensorInfo:
    scale, zero = detail.get("quantization", (0.0, 0))
    dtype = np.dtype(detail["dtype"])
    return TensorInfo(
        name=str(detail["name"]),
        index=int(detail["index"]),
        shape=tuple(int(d) for d in detail["shape"]),
        dtype=dtype,
        scale=float(scale),
        zero_point=int(zero),
        quantized=float(scale) != 0.0 and dtype in QUANTIZED_DTYPES,
    )


class TFLiteModel:
    """A loaded ``.tflite`` file with float-in, float-out ``run``.

    ``input_range`` is the float range the model was trained on (e.g. ``(-1, 1)`` for BlazeFace,
    ``(0, 1)`` for YOLO); ``run`` maps uint8 pixels into it before quantising.
    """

    def __init__(self, path: str | Path, threads: int = 2) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"model file not found: {self.path}")
        Interpreter = _interpreter_class()
        try:
            with runtime_notices_held():
                self._interp = Interpreter(model_path=str(self.path), num_threads=int(threads))
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise ModelError(f"model file {self.path} is not a valid TFLite model: {err}") from None
        self.inputs = [_tensor_info(d) for d in self._interp.get_input_details()]
        self.outputs = [_tensor_info(d) for d in self._interp.get_output_details()]
        if len(self.inputs) != 1:
            raise ModelError(f"model file {self.path}: expected 1 input tensor, found {len(self.inputs)}")
        shape = self.inputs[0].shape
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 3:
            raise ModelError(
                f"model file {self.path}: input tensor must be NHWC (1, H, W, 3), found {shape}"
            )

    def resize_input(self, width: int, height: int) -> None:
        """Give a fully convolutional model another input size; :class:`ModelError` when it cannot take it."""
        try:
            self._interp.resize_tensor_input(self.inputs[0].index, [1, int(height), int(width), 3])
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as err:
            raise ModelError(f"model file {self.path} cannot run at {width}x{height}: {err}") from None
        self.inputs = [_tensor_info(d) for d in self._interp.get_input_details()]
        self.outputs = [_tensor_info(d) for d in self._interp.get_output_details()]

    @property
    def input_size(self) -> tuple[int, int]:
        """Model input as ``(width, height)``."""
        _, h, w, _ = self.inputs[0].shape
        return w, h

    @property
    def quantized(self) -> bool:
        return self.inputs[0].quantized

    def run(self, image: np.ndarray) -> list[np.ndarray]:
        """Invoke on one ``(H, W, 3)`` float32 image already in the model's float input range.

        Returns every output tensor as float32 (dequantised when quantised), batch dim kept.
        """
        info = self.inputs[0]
        batch = image[None] if image.ndim == 3 else image
        if info.quantized:
            data = quantize(batch, info.scale, info.zero_point, info.dtype)
        else:
            data = batch.astype(info.dtype, copy=False)
        self._interp.set_tensor(info.index, data)
        self._interp.invoke()
        return [self._output(o) for o in self.outputs]

    def run_pixels(self, pixels: np.ndarray, input_range: tuple[float, float]) -> list[np.ndarray]:
        """Invoke on one ``(H, W, 3)`` uint8 image; pixels map linearly onto ``input_range``.

        When the input is quantised so that each pixel value is exactly an integer offset from its
        quantised value (e.g. range (0, 1) at scale 1/255, zero point -128), the offset is added in
        integers and the float round trip is skipped.
        """
        info = self.inputs[0]
        lo, hi = input_range
        if info.quantized:
            gain = (hi - lo) / 255.0 / info.scale
            offset = lo / info.scale + info.zero_point
            if abs(gain - 1.0) < 1e-4 and abs(offset - round(offset)) < 1e-3:
                if info.dtype == np.int8 and round(offset) == -128 and pixels.dtype == np.uint8:
                    # u - 128 as int8 is u with its top bit flipped: one pass, no clipping needed
                    data = np.bitwise_xor(pixels, np.uint8(0x80)).view(np.int8)[None]
                else:
                    q = pixels.astype(np.int16) + int(round(offset))
                    limits = np.iinfo(info.dtype)
                    data = np.clip(q, limits.min, limits.max).astype(info.dtype)[None]
                self._interp.set_tensor(info.index, data)
                self._interp.invoke()
                return [self._output(o) for o in self.outputs]
        x = pixels.astype(np.float32) * np.float32((hi - lo) / 255.0) + np.float32(lo)
        return self.run(x)

    def _output(self, info: TensorInfo) -> np.ndarray:
        raw = self._interp.get_tensor(info.index)
        if info.quantized:
            return dequantize(raw, info.scale, info.zero_point)
        return raw.astype(np.float32, copy=False)
