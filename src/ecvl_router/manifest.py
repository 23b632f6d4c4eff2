"""Manifests: every artifact a stage writes records what produced it, from what, with which settings."""

from __future__ import annotations

import hashlib
import json
import os
import platform
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"


def package_version() -> str:
    """The installed version of ecvl-router."""
    try:
        return version("ecvl-router")
    except PackageNotFoundError:
        return "unknown"


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def build_manifest(stage: str, *, inputs: dict[str, Any], settings: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A manifest dict for an artifact produced by ``stage`` from ``inputs`` with ``settings``."""
    return {
        "producer": f"ecvl-router {stage}",
        "version": package_version(),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "inputs": inputs,
        "settings": settings,
        **extra,
    }


def write_json_atomic(path: Path, document: Any) -> None:
    """Write JSON to ``path`` through a temporary file and a rename, so readers never see half a file."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=2, sort_keys=False, default=str) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def write_manifest(directory: Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest.json`` into ``directory`` and return its path."""
    path = Path(directory) / MANIFEST_NAME
    write_json_atomic(path, manifest)
    return path


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest of an artifact directory, or None when it has none."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
