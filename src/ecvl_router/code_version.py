"""A version of the training code: a hash of the source files whose change can change a trained router.

Caches of trained routers put it in their key, so that a change to a router, to training or to the routing
task invalidates them without anyone having to remember to bump a number.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
TRAINING_SOURCES = ("routers/*.py", "learning/training.py", "learning/training_set.py", "learning/thresholds.py", "learning/routing_task.py")
"""The files hashed, relative to the package folder."""


def training_source_files(package: Path = _PACKAGE) -> list[Path]:
    """The source files of the routers, training and the routing task, in a fixed order."""
    return sorted(path for pattern in TRAINING_SOURCES for path in package.glob(pattern))


@cache
def training_code_version(package: Path = _PACKAGE) -> str:
    """SHA-256 (16 hex digits) over the names and contents of :func:`training_source_files`."""
    digest = hashlib.sha256()
    for path in training_source_files(package):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]
