"""The fake camera as an edged camera plug-in: its ``[camera.fake]`` section and the models for its scene.

``edged-sim`` registers :data:`FAKE` under the ``edged.cameras`` entry points, so a config may say
``camera.backend = "fake"``; this module stays light (no renderer) because the config loader imports
it to validate the section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from edged.config import Bounds, CameraConfig, ModelConfig, Section

if TYPE_CHECKING:
    from edged_sim.camera import FakeCamera


class FakeCameraConfig(Section):
    seed: Annotated[int, Bounds(0, 2**31 - 1)] = 7
    """Scene seed: the same seed renders the same frames and ground truth."""
    realtime: bool = True
    """Pace capture at ``camera.fps`` on the wall clock; off renders as fast as the pipeline
    takes frames (tests, benchmarks, simulated runs)."""
    cars_per_minute: Annotated[float, Bounds(0, 600)] = 24.0
    """About one car every 2.5 s: enough traffic that tracks overlap, few enough to count by eye."""
    people_per_minute: Annotated[float, Bounds(0, 600)] = 12.0
    events: bool = True
    """Script the light change, "freeze" and "cover" events."""


class FakeCameraPlugin:
    """The ``fake`` backend: its section type and its camera."""

    section = FakeCameraConfig

    def open(self, camera: CameraConfig) -> FakeCamera:
        """The fake camera ``camera`` describes (size, rate and ``camera.fake``), not started."""
        from edged_sim.camera import from_config

        return from_config(camera)


FAKE = FakeCameraPlugin()
"""What the ``fake`` entry point names."""


def fake_scene_models() -> list[ModelConfig]:
    """The models for the fake camera's rendered road (demo, ``edged_sim``, fake-scene benchmarks):
    edged-det on the whole frame, BlazeFace over each person's head (why: ``docs/TUNING.md``)."""
    return [
        ModelConfig(
            name="det",
            file="models/edged_det_int8.tflite",
            layout="yolo_grid",
            input_size=(640, 384),
            labels=["plate", "car", "person", "truck", "bus"],
            score_threshold=0.1,
            nms_iou=0.5,
        ),
        ModelConfig(
            name="face",
            file="models/face_blazeface_short_range_int8.tflite",
            layout="blazeface",
            input_size=(128, 128),
            labels=["face"],
            score_threshold=0.1,
            nms_iou=0.3,
            crops_from=["person"],
            max_box_fraction=0.3,
            full_frame=False,
        ),
    ]

