"""grpc.aio.Metadata: an ordered multimap of metadata keys to values."""

import collections
import collections.abc


class Metadata(collections.abc.Collection):
    """Metadata of an asyncio RPC: keys map to one or more values, in the
    order they were added."""

    def __init__(self, *args):
        self._entries = collections.OrderedDict()
        for key, value in args:
            self.add(key, value)

    @classmethod
    def from_tuple(cls, raw_metadata):
        return cls(*raw_metadata) if raw_metadata else cls()

    def add(self, key, value):
        self._entries.setdefault(key, []).append(value)

    def __len__(self):
        return sum(len(v) for v in self._entries.values())

    def __getitem__(self, key):
        try:
            return self._entries[key][0]
        except (KeyError, IndexError) as error:
            raise KeyError(repr(key)) from error

    def __setitem__(self, key, value):
        if key in self._entries:
            self._entries[key][0] = value
        else:
            self._entries[key] = [value]

    def __delitem__(self, key):
        values = self._entries.get(key)
        if not values:
            raise KeyError(repr(key))
        del values[0]
        if not values:
            del self._entries[key]

    def delete_all(self, key):
        del self._entries[key]

    def __iter__(self):
        for key, values in self._entries.items():
            for value in values:
                yield (key, value)

    def keys(self):
        return self._entries.keys()

    def values(self):
        return [value for _, value in self]

    def items(self):
        return list(self)

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def get_all(self, key):
        return list(self._entries.get(key, []))

    def set_all(self, key, values):
        self._entries[key] = list(values)

    def __contains__(self, key):
        return key in self._entries

    def __eq__(self, other):
        if isinstance(other, self.__class__):
            return self._entries == other._entries
        if isinstance(other, tuple):
            return tuple(self) == other
        return NotImplemented

    def __add__(self, other):
        if isinstance(other, self.__class__):
            return Metadata(*(tuple(self) + tuple(other)))
        if isinstance(other, tuple):
            return Metadata(*(tuple(self) + other))
        return NotImplemented

    def __repr__(self):
        return "{0}({1!r})".format(self.__class__.__name__, tuple(self))
