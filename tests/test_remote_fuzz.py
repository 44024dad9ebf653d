"""Malformed MQTT payloads, serial lines and faulty signed commands through the command handler
(hypothesis, derandomised): no crash, an error reply each, secrets never echoed, the pipeline keeps
running on its unchanged config.
The full >= 10,000-per-kind run is ``python -m tools.bench.fuzz_remote``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.bench.fuzz_remote import FuzzRig, fuzz


@pytest.mark.slow
def test_fuzz_command_handler_with_malformed_input(tmp_path: Path) -> None:
    rig = FuzzRig(tmp_path)
    try:
        counts = fuzz(rig, examples=1000, seed=0)
        before, after = rig.still_running()
    finally:
        rig.close()
    assert counts["mqtt"] >= 900 and counts["serial"] >= 990 and counts["signed"] == 1000, counts
    assert rig.replies == counts["mqtt"] + counts["serial"] + counts["signed"]
    refused = rig.control.refused
    for code in ("unsigned", "bad_signature", "unknown_key", "wrong_device", "expired", "version_step", "forbidden"):
        assert refused[code] > 0, f"no {code} refusal in {dict(refused)}"
    assert after > before, "the pipeline kept processing frames"
