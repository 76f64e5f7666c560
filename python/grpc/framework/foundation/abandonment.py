"""The exception a computation raises when it gives up."""


class Abandoned(Exception):
    """The computation that raised this was abandoned: its result no longer
    matters, so it stopped without producing one."""
