"""A bounded least-recently-used map for the API's in-process caches.

The caches the API keeps per process (authenticated keys, failed lookups, addresses that
failed to authenticate) must stay bounded whatever clients send. Clearing a full cache at
once would turn one flood into a burst of database lookups for every legitimate key;
evicting the least recently used entry, one at a time, keeps the hot entries.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """At most *max_entries* entries; :meth:`get` and :meth:`put` make an entry recent."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.max_entries = max_entries
        self._entries: OrderedDict[K, V] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        """Store *value*; when full, evict the least recently used entry (only that one)."""
        self._entries[key] = value
        self._entries.move_to_end(key)
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> V | None:
        return self._entries.pop(key, None)

    def drop_where(self, predicate: Callable[[V], bool]) -> int:
        """Remove every entry whose value matches; returns how many were removed."""
        doomed = [k for k, v in self._entries.items() if predicate(v)]
        for key in doomed:
            del self._entries[key]
        return len(doomed)

    def keys(self) -> list[K]:
        """Keys from least to most recently used."""
        return list(self._entries)
