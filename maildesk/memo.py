"""A bounded store of recent results of a pure function, which may also be filled ahead."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

Value = TypeVar("Value")
# Returned by RecentResults.get for a key it does not have, since None is a valid result.
MISSING = object()


class RecentResults(Generic[Value]):
    """The results of the last ``size`` keys, the least recently used dropped first.

    The parse worker processes compute some results of the main process ahead
    (:mod:`maildesk.prepare`); the main process puts them here, so the call
    that needs one finds it. Keys are usually strings, which cache their hash,
    so a lookup costs a dictionary access.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, Value] = OrderedDict()

    def get(self, key: Hashable) -> Value | object:
        """Return the result for ``key``, or :data:`MISSING`."""
        value = self._items.get(key, MISSING)
        if value is not MISSING:
            self._items.move_to_end(key)
        return value

    def put(self, key: Hashable, value: Value) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)
