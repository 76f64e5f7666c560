"""Builds the framework's interface classes from method-name tables."""

import abc


def _abstract(name):
    def method(self, *args, **kwargs):
        raise NotImplementedError()

    method.__name__ = name
    return abc.abstractmethod(method)


def interface(name, module, methods, bases=(abc.ABC,), doc=None):
    """An abstract class whose methods (names) subclasses must provide."""
    namespace = {m: _abstract(m) for m in methods}
    namespace["__module__"] = module
    namespace["__doc__"] = doc
    return abc.ABCMeta(name, bases, namespace)
