"""Best-image selector on hand-made observations, plus hypothesis properties."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edged.config import SelectConfig
from edged.core.classes import class_id
from edged.core.types import Exposure, ExposureMode, FrameMeta, Position, TrackedObjects
from edged.stages.select.selector import BestImageSelector
from edged.stages.track.calibration import GroundProjector
from edged.stages.track.observations import FrameObservations, TrackHistory

W, H = 1280, 720
CAR, PERSON, FACE = class_id("car"), class_id("person"), class_id("face")
CFG = SelectConfig()


def meta(i: int, manual: bool = True) -> FrameMeta:
    mode = ExposureMode.MANUAL if manual else ExposureMode.AUTO
    return FrameMeta(f"img-{i}", i, "v", 100.0 + i / 10, Exposure(mode, 2000, 1), Position(), W, H)


class Scene:
    """Feeds hand-made tracker output through TrackHistory into the selector."""

    def __init__(self, config: SelectConfig = CFG) -> None:
        self.history = TrackHistory(16, GroundProjector(None))
        self.selector = BestImageSelector(config)
        self.i = 0

    def frame(self, rows: list[tuple[int, int, tuple[float, float, float, float], float]], manual: bool = True):
        m = meta(self.i, manual)
        self.i += 1
        n = len(rows)
        objects = TrackedObjects(
            track_ids=np.array([r[0] for r in rows], np.int64),
            class_ids=np.array([r[1] for r in rows], np.int16),
            boxes=np.array([r[2] for r in rows], np.float32).reshape(-1, 4),
            scores=np.array([r[3] for r in rows], np.float32),
            angles=np.zeros(n, np.float32),
            detected=np.ones(n, bool),
        )
        obs: FrameObservations = self.history.record(m, objects)
        return self.selector.select(obs)


def test_first_observation_is_the_first_best_even_if_tiny_low_scored_or_auto():
    s = Scene()
    sel = s.frame([(7, CAR, (600, 300, 605, 303), 0.2)], manual=False)
    assert sel.package is not None and sel.package.trigger_track_id == 7
    assert s.selector.best[7].image_id == "img-0"
    assert not sel.package.immediate


def test_package_holds_every_selected_class_track_in_the_image_but_no_sensitive_class():
    s = Scene()
    s.frame([(1, CAR, (100, 100, 300, 200), 0.9)])
    sel = s.frame([
        (1, CAR, (110, 100, 320, 210), 0.9),
        (2, PERSON, (600, 300, 640, 400), 0.3),  # new: qualifies as first observation
        (3, FACE, (610, 305, 630, 325), 0.9),  # sensitive: never in an ops package
    ])
    pkg = sel.package
    assert pkg is not None and pkg.trigger_track_id == 1
    assert pkg.track_ids.tolist() == [1, 2]
    assert [o["class"] for o in pkg.objects()] == ["car", "person"]
    assert pkg.observations["image_id"].tolist() == ["img-1", "img-1"]
    # Both tracks found the image better: both now have it as their best, one package only.
    assert s.selector.best[1].image_id == s.selector.best[2].image_id == "img-1"
    assert 3 not in s.selector.best


def test_one_package_per_image_and_the_lowest_track_id_triggers():
    s = Scene()
    s.frame([(5, CAR, (100, 100, 300, 200), 0.8), (4, CAR, (500, 100, 700, 200), 0.8)])
    sel = s.frame([(5, CAR, (100, 100, 310, 210), 0.9), (4, CAR, (500, 100, 710, 210), 0.9)])
    assert sel.package is not None and sel.package.trigger_track_id == 4
    assert sel.better_track_ids.tolist() == [4, 5]
    assert s.selector.counters.already_marked == 2  # one in each frame


def test_not_better_images_make_no_package_and_keep_the_best():
    s = Scene()
    s.frame([(1, CAR, (100, 100, 300, 200), 0.9)])
    assert s.frame([(1, CAR, (100, 100, 300, 200), 0.8)]).package is None  # lower score
    assert s.frame([(1, CAR, (100, 100, 290, 200), 0.95)]).package is None  # smaller
    assert s.frame([(1, CAR, (100, 100, 300, 200), 0.95)], manual=False).package is None  # auto exposure
    assert s.frame([(1, CAR, (2, 100, 300, 200), 0.95)]).package is None  # touches the border
    assert s.selector.best[1].image_id == "img-0"
    assert s.frame([(1, CAR, (100, 100, 300, 200), 0.9)]).package is not None  # a tie is better


def test_an_image_whose_edge_distance_drops_is_not_better_even_above_edge1():
    # better needs "edge distance now >= edge distance then": the previous best's own edge distance is
    # the bar, not edge1. Same score, same area, box still well inside the image.
    s = Scene()
    s.frame([(1, CAR, (100, 100, 300, 200), 0.9)])  # edge 100
    assert s.selector.best[1].edge == 100.0
    sel = s.frame([(1, CAR, (50, 100, 250, 200), 0.9)])  # edge 50 >= edge1 = 4
    assert sel.package is None and sel.better_track_ids.tolist() == []
    edge1 = CFG.edge1
    sel = s.frame([(1, CAR, (edge1, 100, edge1 + 200, 200), 0.9)])  # exactly edge1
    assert sel.package is None and sel.better_track_ids.tolist() == []
    assert s.selector.best[1].image_id == "img-0" and s.selector.best[1].edge == 100.0
    sel = s.frame([(1, CAR, (99, 100, 299, 200), 0.9)])  # 99: one pixel short is still worse
    assert sel.package is None
    assert s.frame([(1, CAR, (120, 100, 320, 200), 0.9)]).package is not None  # back to >= 100: better
    assert s.selector.best[1].image_id == "img-4"


def test_a_track_whose_last_observation_is_in_an_older_image_does_not_qualify():
    # qualifying needs "the track's last observation belongs to this image": a row carried over from an
    # earlier image (a track not re-detected here) is neither better nor the package's trigger.
    s = Scene()
    first = s.frame([(1, CAR, (100, 100, 300, 200), 0.9), (2, CAR, (500, 100, 700, 200), 0.9)])
    assert first.better_track_ids.tolist() == [1, 2]
    m = meta(1)
    objects = TrackedObjects(np.array([2]), np.array([CAR], np.int16), np.array([[500, 100, 700, 200]], np.float32),
                             np.array([0.9], np.float32), np.zeros(1, np.float32), np.ones(1, bool))
    now = s.history.record(m, objects)
    stale = s.history.observations(1)[-1:]  # track 1's last observation: img-0
    assert stale["image_id"].tolist() == ["img-0"]
    obs = FrameObservations(m, np.array([1, 2], np.int64), np.array([CAR, CAR], np.int16),
                            np.concatenate([stale, now.rows]), np.array([1, 2], np.int64))
    sel = s.selector.select(obs)
    assert sel.better_track_ids.tolist() == [2]
    assert sel.package is not None and sel.package.trigger_track_id == 2
    assert sel.package.track_ids.tolist() == [2]  # the package: only observations made in this image
    assert s.selector.best[1].image_id == "img-0" and s.selector.best[2].image_id == "img-1"
    assert s.selector.counters.qualified == 3  # 2 in img-0, only track 2 in img-1


def test_small_later_observation_does_not_qualify():
    s = Scene()
    s.frame([(1, PERSON, (100, 100, 120, 130), 0.9)])
    sel = s.frame([(1, PERSON, (100, 100, 125, 140), 0.95)])  # 25 x 40: narrower than min_width 32
    assert sel.package is None and s.selector.counters.qualified == 1


def test_immediate_follows_the_triggering_tracks_box():
    s = Scene()
    s.frame([(1, CAR, (400, 200, 800, 500), 0.9), (2, CAR, (10, 10, 40, 40), 0.9)])
    # Frame 0's trigger is track 1 (ratio 0.13, score 0.9, edge 200): immediate.
    assert s.selector.counters.immediate == 1
    sel = s.frame([(2, CAR, (10, 10, 60, 60), 0.95)])  # track 2 improves, edge 10 < edge2: cached
    assert sel.package is not None and not sel.package.immediate


def test_same_image_twice_is_never_uploaded_twice():
    s = Scene()
    m = meta(0)
    objects = TrackedObjects(np.array([1]), np.array([CAR], np.int16), np.array([[100, 100, 300, 200]], np.float32),
                             np.array([0.9], np.float32), np.zeros(1, np.float32), np.ones(1, bool))
    obs = s.history.record(m, objects)
    assert s.selector.select(obs).package is not None
    assert s.selector.select(obs).package is None


def test_forget_drops_ended_tracks():
    s = Scene()
    s.frame([(1, CAR, (100, 100, 300, 200), 0.9)])
    s.selector.forget([1])
    assert s.selector.best == {}


def test_package_wire_form_round_trips_through_cbor():
    import cbor2

    from edged.link import wire

    s = Scene()
    pkg = s.frame([(1, CAR, (100, 100, 300, 200), 0.9)]).package
    env = pkg.envelope(b"\xff\xd8jpeg", device="rsu-1")
    assert env.prio == "immediate" and env.dest == "ops" and env.image_id == "img-0"
    body = cbor2.loads(wire.decode(wire.encode(env)).body)
    assert body["image"] == b"\xff\xd8jpeg" and body["objects"][0]["track"] == 1
    assert body["objects"][0]["box"] == [100.0, 100.0, 300.0, 200.0]


# ------------------------------------------------------------------------------------ properties
box_st = st.tuples(
    st.floats(-50, W - 10), st.floats(-50, H - 10), st.floats(4, 600), st.floats(4, 400)
).map(lambda t: (t[0], t[1], t[0] + t[2], t[1] + t[3]))
frame_st = st.tuples(
    st.booleans(),  # manual
    st.dictionaries(st.integers(1, 6), st.tuples(box_st, st.floats(0.0625, 1.0, width=32)), max_size=6),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(frame_st, min_size=1, max_size=40))
def test_a_new_best_is_never_worse_on_any_criterion_and_no_image_is_uploaded_twice(frames):
    s = Scene()
    uploaded: list[str] = []
    for manual, tracks in frames:
        before = dict(s.selector.best)
        rows = [(tid, CAR, box, score) for tid, (box, score) in sorted(tracks.items())]
        sel = s.frame(rows, manual=manual)
        if sel.package is not None:
            uploaded.append(sel.package.meta.image_id)
            assert sel.package.trigger_track_id in sel.better_track_ids
            assert sorted(sel.package.track_ids.tolist()) == sorted(tracks)
        for tid, new in s.selector.best.items():
            old = before.get(tid)
            if old is None or old is new:
                continue
            assert new.image_id in uploaded  # a best image is always an uploaded one
            assert new.manual  # auto exposure never replaces a best
            assert new.edge >= old.edge and new.edge >= CFG.edge1
            assert new.score >= old.score
            assert new.area >= old.area
    assert len(uploaded) == len(set(uploaded))


def test_track_and_select_stages_in_the_pipeline():
    from edged.config import Config
    from edged.core.types import Detections, Frame
    from edged.stages.pipeline import FrameWork
    from edged.stages.select.stage import SelectStage
    from edged.stages.track.ids import MemoryIds
    from edged.stages.track.stage import TrackStage

    config = Config()
    stages = [TrackStage.from_config(config, MemoryIds()), SelectStage.from_config(config)]
    uploads = []
    for i in range(6):
        box = np.array([[300 + 10 * i, 200, 500 + 10 * i, 330]], np.float32)
        dets = Detections(box, np.array([0.9], np.float32), np.array([CAR], np.int16), np.zeros(1, np.float32))
        work = FrameWork(Frame(meta(i), np.zeros((H, W, 3), np.uint8)), detections=dets)  # as the detect stage leaves it
        for stage in stages:
            stage(work)
        uploads.append(work.upload)
    assert uploads[0] is None  # a candidate, not yet a track
    assert uploads[1] is not None and uploads[1].track_ids.tolist() == [1]
    assert uploads[1].meta.image_id == "img-1" and uploads[1].immediate
