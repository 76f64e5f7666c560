"""Metadata as the beta API hands it out (keys and values as bytes) and as
grpc takes it."""

import collections

_Metadatum = collections.namedtuple("Metadatum", ("key", "value"))


def _text(x):
    return x.decode("utf-8") if isinstance(x, bytes) else x


def _bytes(x):
    return x.encode("utf-8") if isinstance(x, str) else x


def beta(metadata):
    """grpc metadata (or None) as beta metadata: bytes keys and values."""
    if metadata is None:
        return ()
    return tuple(_Metadatum(_bytes(key), _bytes(value)) for key, value in metadata)


def unbeta(beta_metadata):
    """Beta metadata (or None) as grpc metadata: str keys; binary (-bin)
    values stay bytes, others become str."""
    if beta_metadata is None:
        return ()
    out = []
    for key, value in beta_metadata:
        key = _text(key)
        out.append((key, value if key.endswith("-bin") else _text(value)))
    return tuple(out)
