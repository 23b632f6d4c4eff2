"""The gateway's long-lived objects kept out of the garbage collector's full collections.

A loaded gateway holds a few hundred thousand long-lived Python objects (encoders, tokenizer, router,
web framework). Python's cyclic collector walks all of them in every full collection, with the GIL held: about
0.2-0.3 s in which no request moves, a few times a minute under load, which is what sets the tail latency.
Once the gateway is loaded, the serving processes freeze what is there (``gc.freeze``), so the collector
only walks what requests allocate. A frozen object is still freed when its last reference goes, but a cycle
of frozen objects is not: after a reload, the replaced router is released by :func:`refreeze_heap`.
"""

from __future__ import annotations

import gc


def freeze_heap() -> None:
    """Collect the garbage there is, then move every object left out of the collector's reach."""
    gc.collect()
    gc.freeze()


def refreeze_heap() -> None:
    """In a frozen process: give the collector the frozen objects back, collect, and freeze what is left."""
    if gc.get_freeze_count():
        gc.unfreeze()
        freeze_heap()
