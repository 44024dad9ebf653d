"""The int8 BlazeFace graph rewrite (tools/models/build_face_model.py): exact in float, shipped in the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tools.models.build_face_model import space_to_depth_kernel

MODELS = Path(__file__).resolve().parent.parent / "models"


def conv_same(image: np.ndarray, w: np.ndarray, stride: int) -> np.ndarray:
    """TensorFlow 'SAME' convolution (HWC image, HWIO kernel), written out with numpy."""
    k, size = w.shape[0], image.shape[0]
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    padded = np.pad(image, [(total // 2, total - total // 2)] * 2 + [(0, 0)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(0, 1))[::stride, ::stride]
    return np.einsum("ijcyx,yxco->ijo", windows, w)


def space_to_depth(image: np.ndarray) -> np.ndarray:
    """As ``tf.nn.space_to_depth(x, 2)``: channel index (row offset * 2 + column offset) * C + c."""
    h, w, c = image.shape
    return image.reshape(h // 2, 2, w // 2, 2, c).transpose(0, 2, 1, 3, 4).reshape(h // 2, w // 2, 4 * c)


@pytest.mark.parametrize("k", [3, 5, 7])
def test_space_to_depth_kernel_equals_the_stride_2_convolution(k):
    rng = np.random.default_rng(k)
    image = rng.normal(size=(16, 16, 3))
    w = rng.normal(size=(k, k, 3, 4))
    rewritten = space_to_depth_kernel(w, "SAME")
    assert rewritten.shape[2] == 12
    np.testing.assert_allclose(conv_same(space_to_depth(image), rewritten, 1), conv_same(image, w, 2), atol=1e-9)


def test_space_to_depth_kernel_refuses_what_it_cannot_rewrite():
    with pytest.raises(NotImplementedError):
        space_to_depth_kernel(np.zeros((5, 5, 3, 4)), "VALID")


def test_shipped_int8_face_model_is_the_rewritten_graph():
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(MODELS / "face_blazeface_short_range_int8.tflite"))
    ops = [op["op_name"] for op in it._get_ops_details()]
    assert "SPACE_TO_DEPTH" in ops
    assert ops.count("PAD") == 0  # channel pads: widened away (64x64) or concatenated zeros
    assert it.get_input_details()[0]["shape"].tolist() == [1, 128, 128, 3]
