"""Destination names, in one place: where each outbox message is bound.

``ops`` is the operations platform (de-identified images, events, stats); ``func.<category>`` is
the functional platform authorised for one sensitive category (``func.face``, ``func.plate``),
the only one that receives that category's sealed original crops.
"""

from __future__ import annotations

OPS = "ops"
"""The operations platform."""
FUNC_PREFIX = "func."


def destination(category: str) -> str:
    """The functional platform's destination for a sensitive category: ``func.<category>``."""
    return f"{FUNC_PREFIX}{category}"


def category_of(dest: str) -> str | None:
    """The sensitive category a ``func.<category>`` destination is for; ``None`` for any other name."""
    if not dest.startswith(FUNC_PREFIX):
        return None
    return dest[len(FUNC_PREFIX):] or None
