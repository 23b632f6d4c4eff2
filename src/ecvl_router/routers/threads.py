"""CPU thread limits for training.

The routers are small: a batch of 64 through a d = 256 Transformer, or 100 trees over a few thousand
rows. Measured on a 2-core machine shared with other work, two threads were 13x (torch) and 6x
(scikit-learn's boosted trees) slower than one, because OpenMP threads spin-wait on a busy core; so
training defaults to one thread, and ``num_threads`` raises it on a machine with cores to spare.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from threadpoolctl import threadpool_limits

DEFAULT_THREADS = 1


@contextmanager
def limited_threads(num_threads: int) -> Iterator[None]:
    """Run torch and OpenMP/BLAS thread pools on ``num_threads`` threads; restore the previous limits after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        with threadpool_limits(limits=num_threads):
            yield
    finally:
        torch.set_num_threads(previous)
