"""Named tables of the search's parts: axes, factors, selection rules, runners, baseline methods.

Why a registry rather than if-chains: the paper's vocabulary (six axes, the
factors they move, the rule that picks a step) should be readable as one
table each, and adding a part should be one entry in one place. Each table is
a :class:`Registry` owned by the module that implements its entries
(``expand.search.axes.AXES``, ``expand.search.select.RULES``, ...); config
validation, the CLI's choices and ``x3d-expand`` help all read the names from
it, so a registered entry is usable everywhere at once.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, Optional, TypeVar, overload

from expand.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """An ordered name -> entry table; order is registration order (it is the tie-break order)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    @overload
    def register(self, name: str, entry: T, *, replace: bool = False) -> T: ...

    @overload
    def register(self, name: str, entry: None = None, *, replace: bool = False) -> Callable[[T], T]: ...

    def register(self, name: str, entry: Optional[T] = None, *, replace: bool = False):  # noqa: ANN201
        """Add ``entry`` as ``name`` (or use as a decorator); a second entry of a name is an error."""
        if not name or not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"{self.kind} name {name!r}: letters, digits, '_' and '-' only")

        def add(item: T) -> T:
            if name in self._entries and not replace:
                raise ValueError(f"{self.kind} {name!r} is already registered (pass replace=True)")
            self._entries[name] = item
            return item

        return add if entry is None else add(entry)

    def unregister(self, name: str) -> T:
        """Remove and return an entry (tests and plugins that add one for a while)."""
        return self._entries.pop(name)

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(self.unknown(name)) from None

    def unknown(self, name: str) -> str:
        """The one-line error for a name that is not registered."""
        return f"unknown {self.kind} {name!r} ({self.kind}s: {', '.join(self._entries)})"

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


__all__ = ["Registry"]
