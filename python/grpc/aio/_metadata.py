"""grpc.aio.Metadata: an ordered multimap of metadata keys to values.

As grpcio 1.85's: iteration (and len, ==, tuple()) sees (key, value) pairs
in the order added, grouped by key; keys(), values() and items() are views
of the mapping from each key to its list of values; get_all() is that list
itself."""

import collections
import collections.abc


class Metadata(collections.abc.Collection):
    """Metadata of an asyncio RPC: keys map to one or more values, in the
    order they were added."""

    def __init__(self, *args):
        self._metadata = collections.OrderedDict()
        for key, value in args:
            self.add(key, value)

    @classmethod
    def from_tuple(cls, raw_metadata):
        return cls(*raw_metadata) if raw_metadata else cls()

    @classmethod
    def _create(cls, raw_metadata):
        """Metadata from None, a Metadata (returned as is) or pairs."""
        if raw_metadata is None:
            return cls()
        if isinstance(raw_metadata, cls):
            return raw_metadata
        return cls(*raw_metadata) if raw_metadata else cls()

    def add(self, key, value):
        self._metadata.setdefault(key, []).append(value)

    def __len__(self):
        return sum(len(v) for v in self._metadata.values())

    def __getitem__(self, key):
        try:
            return self._metadata[key][0]
        except (KeyError, IndexError) as error:
            raise KeyError(repr(key)) from error

    def __setitem__(self, key, value):
        values = self._metadata.get(key)
        self._metadata[key] = [value] if not values else [value, *values[1:]]

    def __delitem__(self, key):
        values = self._metadata.get(key)
        if not values:
            raise KeyError(repr(key))
        del values[0]
        if not values:
            del self._metadata[key]

    def delete_all(self, key):
        del self._metadata[key]

    def __iter__(self):
        for key, values in self._metadata.items():
            for value in values:
                yield (key, value)

    def keys(self):
        return collections.abc.KeysView(self._metadata)

    def values(self):
        return collections.abc.ValuesView(self._metadata)

    def items(self):
        return collections.abc.ItemsView(self._metadata)

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def get_all(self, key):
        return self._metadata.get(key, [])

    def set_all(self, key, values):
        self._metadata[key] = values

    def __contains__(self, key):
        return isinstance(key, str) and key in self._metadata

    def __eq__(self, other):
        if isinstance(other, self.__class__):
            return self._metadata == other._metadata
        if isinstance(other, tuple):
            return tuple(self) == other
        return NotImplemented

    __hash__ = None

    def __add__(self, other):
        if isinstance(other, self.__class__):
            return Metadata(*(tuple(self) + tuple(other)))
        if isinstance(other, tuple):
            return Metadata(*(tuple(self) + other))
        return NotImplemented

    def __repr__(self):
        return "{0}({1!r})".format(self.__class__.__name__, tuple(self))
