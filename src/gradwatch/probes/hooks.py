"""Hooks that survive ``torch.save(model)``: a watched model holds gradwatch's hooks in its hook
dicts, and pickling the whole module (``torch.save(model, path)``, ``copy.deepcopy``) pickles
them too. Closures and bound methods of a watcher (which holds a store and its thread's lock)
cannot be pickled; wrapped in :class:`Picklable` they pickle as an inert hook that does nothing
when the saved model runs, while the live model keeps the real one.

Example:
    >>> import pickle, torch
    >>> m = torch.nn.Linear(2, 2)
    >>> h = m.register_forward_hook(Picklable(lambda mod, args, out: None))
    >>> m2 = pickle.loads(pickle.dumps(m)); m2(torch.ones(1, 2)).shape
    torch.Size([1, 2])
"""

from __future__ import annotations

from typing import Any, Callable


class Inert:
    """What a pickled gradwatch hook becomes: a hook that returns None (changes nothing).

    Example:
        >>> Inert()(None, (1,), 2) is None
        True
    """

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        return None


class Picklable:
    """Wrap a hook so that pickling it gives an :class:`Inert` hook instead of failing.

    Example:
        >>> import pickle
        >>> isinstance(pickle.loads(pickle.dumps(Picklable(lambda *a: 1))), Inert)
        True
    """

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __reduce__(self):
        return (Inert, ())


# torch.load(weights_only=True), the default, refuses classes it does not know: a model saved
# whole while watched loads wherever gradwatch is importable
import torch.serialization  # noqa: E402

torch.serialization.add_safe_globals([Inert])
