"""The search: axes, selection, the coordinator, runners and the worker pool.

``expand.search`` is also the public function that runs a search
(``expand.search("synthetic_tiny", max_steps=1)``): the package cannot hide
its own name (importing ``expand.search.axes`` binds ``expand.search`` to
this package), so the package is made callable and calling it is
:func:`expand.python_api.search`. Python supports exactly this by setting a
module's ``__class__`` (PEP 549's documented alternative).
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableSearchPackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from expand.python_api import search

        return search(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableSearchPackage
