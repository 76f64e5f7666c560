"""How a service implementation is written."""

import enum


@enum.unique
class Service(enum.Enum):
    """Inline (returns values, blocking) or event-driven (callbacks)."""

    INLINE = "inline"
    EVENT = "event"
