"""The source of ``_memtrim_lazy.py``, the helper memtrim writes beside rewritten modules.

A module whose imports memtrim made lazy gets, where its first deferred import
used to be, one line::

    import _memtrim_lazy; __getattr__ = _memtrim_lazy.install(globals(), {...})

The table maps each deferred name to how the original statement obtained it:
``("from", MODULE, NAME)`` for ``from MODULE import NAME``, ``("module", NAME)``
for a module object (``import a.b as c``, a submodule), ``("import", DOTTED)``
for ``import a.b.c`` (binds ``a``).  The module-level ``__getattr__`` (PEP 562)
performs that import the first time the name is looked up on the module (by
``from m import name``, ``m.name``, ``import *`` with ``__all__``, pickle, ...),
stores the object in the module's namespace and returns it: the very object
the original import bound.  Names used inside the module's own functions are
not served by this table: those functions import them locally.

The helper is standard library only and does not import memtrim: the
optimized program never needs memtrim at run time.  :data:`HELPER_SOURCE` is
what gets written; this module is never imported by the optimized program.
"""

HELPER_MODULE = "_memtrim_lazy"

HELPER_SOURCE = '''\
"""Deferred imports for modules rewritten by memtrim (generated; needs nothing but Python).

A rewritten module calls install(globals(), routes) where its first deferred
import used to be.  The returned function is the module's __getattr__ (PEP 562):
the first lookup of a deferred name runs the import the original statement ran,
caches the object in the module's namespace and returns it.  Thread-safe: the
import system serializes module execution, and every racer gets the same object.
"""

import sys
from _thread import get_ident

__all__ = ["install", "chain", "resolve"]

ROUTES_KEY = "__memtrim_lazy__"


def resolve(route):
    """The object a route's import statement binds (see install)."""
    kind = route[0]
    if kind == "from":  # from MODULE import NAME
        module = __import__(route[1], None, None, (route[2],), 0)
        try:
            return getattr(module, route[2])
        except AttributeError:
            # like IMPORT_FROM: a submodule that is not (yet) an attribute
            sub = sys.modules.get(route[1] + "." + route[2])
            if sub is not None:
                return sub
            raise ImportError(
                "cannot import name %r from %r" % (route[2], route[1]), name=route[1]
            ) from None
    if kind == "module":  # the module object itself (import a.b as c, from a import b)
        __import__(route[1])
        return sys.modules[route[1]]
    if kind == "import":  # import a.b.c (and import a.d ...) bind the top-level package a
        for dotted in route[1:]:
            top = __import__(dotted)
        return top
    raise ValueError("unknown lazy route %r" % (route,))


def install(namespace, routes):
    """Return the __getattr__ that serves ``routes`` for the module ``namespace``.

    A __getattr__ the module already defines is consulted for every other name.
    """
    previous = namespace.get("__getattr__")
    if getattr(previous, "_memtrim_lazy", False):
        previous = getattr(previous, "_memtrim_previous", None)
    merged = dict(namespace.get(ROUTES_KEY) or {})
    merged.update(routes)
    namespace[ROUTES_KEY] = merged
    module_name = namespace.get("__name__")
    busy = set()

    def __getattr__(name):
        route = merged.get(name)
        key = (get_ident(), name)
        if route is not None and key in busy:
            # asked again while resolving it (``from pkg import sub`` looks the name
            # up before importing the submodule): let the import system go on
            route = None
        if route is None:
            if previous is not None:
                return previous(name)
            raise AttributeError("module %r has no attribute %r" % (module_name, name))
        busy.add(key)
        try:
            value = resolve(route)
        except AttributeError as e:
            # an AttributeError escaping __getattr__ would read as "no such name"
            # and hide the real failure: surface it as the import error it is
            raise ImportError("deferred import of %r failed: %s" % (name, e)) from e
        finally:
            busy.discard(key)
        namespace[name] = value
        return value

    __getattr__._memtrim_lazy = True
    __getattr__._memtrim_previous = previous
    if "__dir__" not in namespace:
        namespace["__dir__"] = lambda: sorted(set(namespace) | set(merged))
    return __getattr__


def chain(namespace):
    """Re-install after the module defined its own __getattr__ below the first install."""
    return install(namespace, {})
'''
