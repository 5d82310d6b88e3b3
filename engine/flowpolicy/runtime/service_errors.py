"""Registry errors as obproject's callers catch them: ``requests.HTTPError``.

obproject's ``Asset`` raises ``requests.HTTPError`` for whatever the asset service refuses,
and code written for it branches on ``e.response.status_code`` (404: no such asset or
instance). Every flowpolicy :class:`~flowpolicy.errors.RegistryError` carries the status the
service answers the same failure with (``status_code``, ``response.status_code``); the
obproject API (``Asset``'s obproject methods, ``self.prj``) raises it as an error that is
both its own flowpolicy class and a ``requests.HTTPError``, so ``except requests.HTTPError``
and ``except RegistryError`` (or ``AssetNotFound``, ``RegistryDamaged`` …) both catch it.
``requests`` comes with Metaflow; it is imported only when an error is raised.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from flowpolicy.errors import RegistryError

F = TypeVar("F", bound=Callable[..., Any])

_http_classes: dict[type, type] = {}


def as_http_error(exc: RegistryError) -> RegistryError:
    """``exc`` as an instance of ``(type(exc), requests.HTTPError)``, same message and
    attributes (itself if it is one already)."""
    import requests

    if isinstance(exc, requests.HTTPError):
        return exc
    cls = type(exc)
    http_cls = _http_classes.get(cls)
    if http_cls is None:
        http_cls = type(cls.__name__, (cls, requests.HTTPError),
                        {"__module__": cls.__module__, "__doc__": cls.__doc__,
                         "__qualname__": cls.__qualname__, "request": None})
        _http_classes[cls] = http_cls
    converted = http_cls.__new__(http_cls, *exc.args)
    converted.__dict__.update(exc.__dict__)
    return converted


def http_errors(method: F) -> F:
    """Let ``method`` raise its registry errors as :func:`as_http_error` makes them."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except RegistryError as exc:
            raise as_http_error(exc).with_traceback(exc.__traceback__) from exc.__cause__

    return wrapper  # type: ignore[return-value]


def http_error_iter(items: Callable[[], Iterator[Any]]) -> Iterator[Any]:
    """Yield from ``items()`` (called at the first ``next``, as obproject's listing makes its
    request then), raising registry errors as :func:`as_http_error` makes them."""
    try:
        yield from items()
    except RegistryError as exc:
        raise as_http_error(exc).with_traceback(exc.__traceback__) from exc.__cause__
