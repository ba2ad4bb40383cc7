"""Graph algorithms shared by the analyses."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

N = TypeVar("N", bound=Hashable)


def strongly_connected(nodes: Iterable[N], successors: Callable[[N], Iterable[N]]
                       ) -> list[list[N]]:
    """Tarjan's algorithm, iterative (deep graphs would overflow the recursion limit).

    Returns every strongly connected component (singletons too), in the order
    Tarjan completes them: a component comes after every component it reaches,
    so the list is a reverse topological order.  Successors outside ``nodes``
    are ignored; roots and successors are visited in sorted order, so the
    result is deterministic.
    """
    members = set(nodes)
    index: dict[N, int] = {}
    low: dict[N, int] = {}
    on_stack: set[N] = set()
    stack: list[N] = []
    result: list[list[N]] = []
    counter = 0
    for root in sorted(members):  # type: ignore[type-var]
        if root in index:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(sorted(successors(root))))]  # type: ignore[type-var]
        while work:
            v, children = work[-1]
            advanced = False
            for w in children:
                if w not in members:
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(successors(w)))))  # type: ignore[type-var]
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                result.append(component)
    return result
