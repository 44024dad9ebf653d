"""The real-set evaluation's judging and report, on a two-frame item with a real face (the daemon's own chain)."""

from __future__ import annotations

import cv2
import pytest

from edged.config import Config
from edged.runtime.deid_files import OfflineChain, deid_config
from tools.eval import deid_real
from tools.eval.realset import GtBox, Item

FACE_BOX = (181.0, 72.0, 271.0, 186.0)
"""Eileen Collins' face in scikit-image's astronaut photo (box by eye)."""


@pytest.fixture(scope="module")
def item() -> Item:
    data = pytest.importorskip("skimage.data")
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    face = GtBox("face", FACE_BOX, ">32", track=1, first_frame=0)
    flat = GtBox("face", (400.0, 400.0, 440.0, 440.0), "16-20", track=2, first_frame=1, ignore=True)
    return Item("astronaut", "faces_video", "public domain (NASA)", frames=[photo, photo.copy()],
                gt=[[face], [face, flat]])


def test_a_found_face_counts_hidden_from_its_first_frame_and_the_report_names_it(item: Item) -> None:
    chain = OfflineChain(deid_config(Config(), sealing=False))
    tallies: dict[tuple[str, str, str], deid_real.BandTally] = {}
    result = deid_real.run_item(chain, item, tallies, None, stride=1)
    tally = tallies[("face", ">32", "faces_video")]
    assert (tally.labelled, tally.hidden, tally.first_labelled, tally.first_hidden) == (2, 2, 1, 1)
    assert ("face", "16-20", "faces_video") not in tallies  # ignored boxes count nowhere
    assert max(tally.detail) <= deid_real.HIDDEN_DETAIL
    assert result.frames == 2 and 0 < min(result.changed) <= max(result.changed) < 0.5
    text = deid_real.report(tallies, [result], "a reference", "defaults")
    assert "| face | >32 | faces_video | 2 | 100.0% | 1 / 1 |" in text and "References: a reference" in text


def test_an_untouched_face_is_not_hidden(item: Item) -> None:
    """The judging can fail: the same item judged against its own original frames."""
    tally = deid_real.BandTally()
    for frame, boxes in zip(item.frames, item.gt):
        for b in boxes:
            if not b.ignore:
                kept = deid_real.detail_kept(frame, frame, b.box)
                tally.labelled += 1
                tally.hidden += not kept > deid_real.HIDDEN_DETAIL
    assert tally.labelled == 2 and tally.hidden == 0
