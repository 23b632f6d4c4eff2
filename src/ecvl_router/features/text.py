"""Text encoder: any BERT-like Hugging Face model, pooled into one vector per question.

Pooling is ``"mean"`` (average of the last hidden states over the attention mask, the default) or
``"cls"`` (the last hidden state of the first token). A folder saved by sentence-transformers
(e.g. all-MiniLM-L6-v2) brings its own pooling, normalisation and maximum length, which are used
unless overridden, so such models embed exactly as their authors specify.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from ecvl_router.features.sources import DEFAULT_TEXT_MODEL, PACKAGED_TEXT_MODELS
from ecvl_router.features.weights import folder_weights_digest, resolve_hf_model

logger = logging.getLogger(__name__)

Pooling = Literal["mean", "cls"]
TextPrecision = Literal["float32", "bfloat16", "int8"]
_MAX_LENGTH_CAP = 512


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
        precision: TextPrecision = "float32",
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.pooling: Pooling = pooling
        self.normalize = normalize
        self.max_length = max_length
        self.precision: TextPrecision = precision
        self.dim = int(model.config.hidden_size)
        settings = f"pool={pooling},norm={int(normalize)},len={max_length}"
        if precision != "float32":
            settings += f",{precision}"
        self.identity = f"{name}@{weights_digest[:12]}[{settings}]"

    @classmethod
    def load(
        cls,
        model: str | Path = DEFAULT_TEXT_MODEL,
        *,
        pooling: Pooling | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        precision: TextPrecision = "float32",
    ) -> TextEncoder:
        """Load ``model``: a local folder, else a Hugging Face Hub id (cache first), else a packaged copy.

        ``pooling``/``normalize``/``max_length`` default to the folder's sentence-transformers
        settings, else mean pooling, no normalisation, the tokenizer's limit (at most 512).
        ``precision``: ``"bfloat16"`` runs the network in bfloat16 (fast on CPUs with native bfloat16,
        e.g. AVX512-BF16/AMX; slow elsewhere); ``"int8"`` applies dynamic int8 quantisation to the
        Linear layers (fast on any x86 CPU, but a visibly less faithful embedding).
        """
        from transformers import AutoModel, AutoTokenizer

        folder, name = resolve_hf_model(model, "text encoder", PACKAGED_TEXT_MODELS.get(str(model)))
        declared = _sentence_transformers_settings(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        network = AutoModel.from_pretrained(folder)
        if max_length is None:
            max_length = declared.get("max_length") or min(int(tokenizer.model_max_length), _MAX_LENGTH_CAP)
        if precision == "bfloat16":
            network = network.to(torch.bfloat16)
        elif precision == "int8":
            network = torch.ao.quantization.quantize_dynamic(network, {torch.nn.Linear}, dtype=torch.qint8)
        encoder = cls(
            network,
            tokenizer,
            name=name,
            weights_digest=folder_weights_digest(folder),
            pooling=pooling or declared.get("pooling", "mean"),
            normalize=declared.get("normalize", False) if normalize is None else normalize,
            max_length=int(max_length),
            precision=precision,
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

    def tokenize(self, texts: list[str], tensors: Literal["pt", "np"]) -> dict[str, Any]:
        """The model's inputs for ``texts`` (see :func:`tokenize`)."""
        return tokenize(self.tokenizer, texts, self.max_length, tensors)

    def pooled_module(self) -> PooledText:
        """The network with this encoder's pooling and normalisation, taking the tokenizer's tensors by position."""
        names = list(self.tokenize(["probe"], "pt"))
        return PooledText(self.model, names, self.pooling, self.normalize)

    def _forward(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenize(texts, "pt")
        hidden = self.model(**tokens).last_hidden_state.float()
        return pool(hidden, tokens["attention_mask"], self.pooling, self.normalize)


_TOKENIZER_LOCK = threading.Lock()


def tokenize(tokenizer: Any, texts: list[str], max_length: int, tensors: Literal["pt", "np"]) -> dict[str, Any]:
    """A text model's inputs for ``texts``: padded to the longest, truncated to ``max_length``.

    One call at a time (fast tokenizers are not re-entrant; a call costs well under a millisecond)."""
    with _TOKENIZER_LOCK:
        return dict(tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors=tensors))


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: Pooling, normalize: bool) -> torch.Tensor:
    """One vector per sequence: the first token's state (``cls``) or the mean over the mask, optionally L2-normalised."""
    if pooling == "cls":
        pooled = hidden[:, 0]
    else:
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    if normalize:
        pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
    return pooled


class PooledText(torch.nn.Module):
    """A text network plus pooling as one module: tokenizer tensors (in the order of ``names``) in, vectors out."""

    def __init__(self, model: torch.nn.Module, names: list[str], pooling: Pooling, normalize: bool) -> None:
        super().__init__()
        self.model, self.names, self.pooling, self.normalize = model, names, pooling, normalize

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        inputs = dict(zip(self.names, tensors))
        hidden = self.model(**inputs).last_hidden_state.float()
        return pool(hidden, inputs["attention_mask"], self.pooling, self.normalize)
