"""What a remote ``set`` may change: one declared rule for every key of the config.

Three kinds of key:

- **local**: only the config file on the device changes them: the device's identity and folders,
  every host, port, credential, certificate and key path (a secret is only ever sent to the host it
  was configured with, and a remote command cannot point it elsewhere), the trust settings
  themselves, model files, camera sources, and what the camera delivers (rate, size, exposure).
- **admin**: privileged: an admin key (``remote.auth.admin_keys``) may change them; links on or
  off, timers, queues, buffers, tiling, the outbox budget.
- **operator**: any trusted key may change them within the config's ranges: the video segment
  length, selection, calibration, health, local frames.

Privacy keys are *stronger-only* for everyone: a remote change may cover more (a larger margin,
coarser cells, a lower score threshold, a flat fill, fewer sealed categories), never less. Making
de-identification weaker is a decision for whoever holds the device's config file. Every key that
can change what is hidden is one of them, or local:

- the tracker's: a tracked face is hidden in every frame (a predicted box through missed
  detections; never dropped for the unconfident budget when it started at ``privacy.confident_score``),
  an untracked faint one only within ``privacy.unconfident_max_share``; so only towards more and
  longer tracks of faces and plates: lower scores to start,
  follow and keep one, fewer hits to confirm it, looser matching, a longer lost buffer. Kalman noise
  moves predicted boxes either way (no direction hides more): local.
- tiling's: tiles find faces too small for the whole-frame pass; only on, smaller, overlapping more,
  on more models.
- the stabiliser's geometry (grid, shrink rate, on/off): its box always holds the object's grown box,
  but an ellipse is inscribed in that box, which may sit off the face; remote only while
  ``privacy.shape`` is ``box``.
- what the camera delivers: frame rate, frame size, exposure and gain change what the models see,
  and no direction is safe in every scene (a lower rate lets a face outrun the tracker's gates, a
  smaller frame shrinks faces below detection, a higher rate or larger frame overloads the device
  and frames are dropped, a longer shutter blurs): local.

A key with no rule cannot be changed remotely (:func:`rule_for` refuses it), so a new config key is
local until someone declares otherwise.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
import msgspec.inspect as mi

from edged.config import Config

Role = Literal["operator", "admin"]
Who = Literal["operator", "admin", "local"]


class PolicyError(ValueError):
    """A remote change the policy does not allow; the message names the key and why."""


# ----------------------------------------------------------------------- stronger-only directions
def at_least(old: Any, new: Any) -> bool:
    """Stronger when the value grows (e.g. the margin around a face)."""
    return bool(new >= old)


def at_most(old: Any, new: Any) -> bool:
    """Stronger when the value shrinks (e.g. cells of detail left, a score threshold)."""
    return bool(new <= old)


def fewer_items(old: Any, new: Any) -> bool:
    """Stronger when items are only taken away (sealed categories, recipients): fewer originals leave."""
    if isinstance(old, dict):
        return all(k in old and old[k] == v for k, v in new.items())
    return set(new) <= set(old)


def switched_on_only(old: bool, new: bool) -> bool:
    """Stronger when a protection is switched on, never off."""
    return new or not old


METHOD_STRENGTH = {"blur": 0, "pixelate": 0, "fill": 1}
"""``fill`` leaves nothing of a region; blur and pixelate keep a comparable smudge of ``cells``."""


def stronger_shape(old: str, new: str) -> bool:
    """Only towards ``box``: the whole rectangle hides at least the ellipse inscribed in it."""
    return new == old or new == "box"


def stronger_method(old: str, new: str) -> bool:
    """Only towards ``fill``; blur and pixelate are not ordered, so neither replaces the other."""
    return new == old or METHOD_STRENGTH[new] > METHOD_STRENGTH[old]


def each_at_most(old: Any, new: Any) -> bool:
    """Stronger when no component grows (a tile's width and height: smaller tiles see smaller faces)."""
    return all(n <= o for n, o in zip(new, old, strict=True))


def more_models(old: list[str], new: list[str]) -> bool:
    """Stronger when models are only added to a list where empty means every model."""
    return not new or (bool(old) and set(new) >= set(old))


def more_items(old: list[str], new: list[str]) -> bool:
    """Stronger when items are only added (classes painted from their edge: their outline no longer shows)."""
    return set(new) >= set(old)


DIRECTIONS: dict[Callable[[Any, Any], bool], str] = {
    at_least: "grow",
    at_most: "shrink",
    fewer_items: "lose items",
    switched_on_only: "be switched on",
    stronger_shape: "change towards box",
    stronger_method: "change towards fill",
    each_at_most: "shrink in every dimension",
    more_models: "gain models (empty: all of them)",
    more_items: "gain items",
}
"""How a refusal says which way a privacy key may still change."""


@dataclass(frozen=True)
class Rule:
    """Who may change a key remotely, and for privacy keys in which direction."""

    who: Who
    stronger: Callable[[Any, Any], bool] | None = None
    """For privacy keys: ``stronger(old, new)`` is true when ``new`` hides at least as much."""
    only_if: tuple[Callable[[Config], bool], str] | None = None
    """A condition on the new config under which the key may change remotely, and how to say it."""


LOCAL = Rule("local")
ADMIN = Rule("admin")
OPERATOR = Rule("operator")


def _privacy(direction: Callable[[Any, Any], bool], who: Role = "operator") -> Rule:
    return Rule(who, direction)


def _shape_is_box(config: Config) -> bool:
    return config.privacy.shape == "box"


STABILISER_GEOMETRY = Rule("admin", only_if=(_shape_is_box, "privacy.shape is box (with an ellipse the "
                                                            "stabiliser is set in the local file only)"))


POLICY: tuple[tuple[str, Rule], ...] = (
    # identity, folders and trust: the file only
    ("device.*", LOCAL),
    ("remote.auth.*", LOCAL),
    ("output.dir", LOCAL),
    ("outbox.path", LOCAL),
    # the segment length only labels frames (their video_id); everything else of the camera changes
    # what the models see (rate, size, exposure, gain, sources, plug-in sections): the file only
    ("camera.segment_s", OPERATOR),
    ("camera.*", LOCAL),
    ("exposure.*", LOCAL),
    ("pipeline.*", ADMIN),
    ("output.*", OPERATOR),
    # detection: the models are files; switching detection off would stop all de-identification
    ("detect.enabled", _privacy(switched_on_only)),
    ("detect.models", LOCAL),
    ("detect.threads", ADMIN),
    # merging boxes of one object: only towards keeping more of them (a lower IoU could merge two faces)
    ("detect.merge_iou", _privacy(at_least)),
    # tiles find small faces: only on, smaller, overlapping more, on more models (admin: each costs an invoke)
    ("detect.tiling.enabled", _privacy(switched_on_only, "admin")),
    ("detect.tiling.tile", _privacy(each_at_most, "admin")),
    ("detect.tiling.overlap", _privacy(at_least, "admin")),
    ("detect.tiling.models", _privacy(more_models, "admin")),
    # tracking decides which faces stay hidden through missed and faint detections: only towards
    # more and longer tracks (a lost track's predicted box keeps a face covered, a track that started
    # confidently is never dropped for the unconfident budget)
    ("track.predicted_output_s", _privacy(at_least)),
    ("track.lost_buffer_s", _privacy(at_least)),
    ("track.confirm_hits", _privacy(at_most)),
    ("track.sensitive_birth_score", _privacy(at_most)),
    ("track.sensitive_high_score", _privacy(at_most)),
    # people's and vehicles' tracks hide nothing (faces and plates have the sensitive scores above)
    ("track.birth_score", OPERATOR),
    ("track.high_score", OPERATOR),
    ("track.low_score", _privacy(at_most)),
    ("track.min_iou_*", _privacy(at_most)),
    ("track.candidate_buffer", _privacy(at_least)),
    ("track.leaving_growth", _privacy(at_least)),
    # Kalman noise moves predicted boxes and matches either way: no direction hides more
    ("track.std_*", LOCAL),
    ("track.history_len", OPERATOR),
    ("track.id_block", OPERATOR),
    ("calibration.*", OPERATOR),
    ("select.*", OPERATOR),
    # links: hosts, ports, TLS, credentials and key paths are local; the rest privileged
    ("remote.mqtt.host", LOCAL),
    ("remote.mqtt.port", LOCAL),
    ("remote.mqtt.tls", LOCAL),
    ("remote.mqtt.*_file", LOCAL),
    ("remote.mqtt.username", LOCAL),
    ("remote.mqtt.password", LOCAL),
    ("remote.mqtt.client_id", LOCAL),
    ("remote.mqtt.*", ADMIN),
    ("remote.serial.port", LOCAL),
    ("remote.serial.*", ADMIN),
    ("remote.*", ADMIN),
    ("uplink.ops.keepalive_s", ADMIN),
    ("uplink.ops.max_in_flight", ADMIN),
    ("uplink.ops.*", LOCAL),
    ("uplink.functional", LOCAL),
    ("uplink.quality_*", OPERATOR),
    ("uplink.*", ADMIN),
    ("systemd.*", ADMIN),
    ("outbox.*", ADMIN),
    ("health.*", OPERATOR),
    # privacy: stronger only
    ("privacy.method", _privacy(stronger_method)),
    ("privacy.margin", _privacy(at_least)),
    ("privacy.shape", _privacy(stronger_shape)),
    ("privacy.cells", _privacy(at_most)),
    ("privacy.min_cell_px", _privacy(at_least)),
    ("privacy.min_score", _privacy(at_most)),
    ("privacy.confident_score", _privacy(at_most)),
    ("privacy.unconfident_max_share", _privacy(at_least)),
    ("privacy.categories", _privacy(fewer_items)),
    ("privacy.recipients", _privacy(fewer_items)),
    ("privacy.signing_key", LOCAL),
    ("privacy.stabilize", STABILISER_GEOMETRY),
    ("privacy.grid_px", STABILISER_GEOMETRY),
    ("privacy.shrink_per_frame", STABILISER_GEOMETRY),
    # a fitted region hides less of its box: only towards fewer fitted regions
    ("privacy.fit_from_px", _privacy(at_least)),
    # a class painted from its edge shows neither its colour nor its outline: only towards more classes
    ("privacy.edge_fill", _privacy(more_items)),
    ("privacy.fill_update", ADMIN),
    ("privacy.redraw_levels", ADMIN),
)
"""First match wins; ``*`` matches any characters, dots included."""


def rule_for(key: str) -> Rule | None:
    """The rule that governs ``key`` (a dotted path of a config leaf), or ``None`` (not remote)."""
    for pattern, rule in POLICY:
        if fnmatch.fnmatchcase(key, pattern):
            return rule
    return None


def leaf_keys(cls: type = Config, prefix: str = "") -> Iterator[str]:
    """Every leaf key of the config tree (sections are walked; lists and tables are leaves)."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType), f"{cls} is not a config section"
    for field in info.fields:
        if isinstance(field.type, mi.StructType):
            yield from leaf_keys(field.type.cls, f"{prefix}{field.name}.")
        else:
            yield prefix + field.name


def _value(config: Config, key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        node = getattr(node, part)
    return msgspec.to_builtins(node)


def changed_keys(old: Config, new: Config) -> list[str]:
    """Leaf keys whose value differs between ``old`` and ``new``."""
    return [key for key in leaf_keys() if _value(old, key) != _value(new, key)]


def check_change(old: Config, new: Config, role: Role) -> list[str]:
    """Raise :class:`PolicyError` for the first change ``role`` may not make; return the changed keys."""
    changed = changed_keys(old, new)
    for key in changed:
        rule = rule_for(key)
        if rule is None or rule.who == "local":
            raise PolicyError(f"config error at {key}: cannot be changed remotely (edit the local config file)")
        if rule.who == "admin" and role != "admin":
            raise PolicyError(f"config error at {key}: needs an admin key (remote.auth.admin_keys)")
        if rule.only_if is not None and not rule.only_if[0](new):
            raise PolicyError(f"config error at {key}: may change remotely only while {rule.only_if[1]}")
        if rule.stronger is not None and not rule.stronger(_value(old, key), _value(new, key)):
            raise PolicyError(
                f"config error at {key}: would weaken de-identification; remotely it may only "
                f"{DIRECTIONS.get(rule.stronger, 'get stronger')} (privacy may only be made stronger remotely)"
            )
    return changed
