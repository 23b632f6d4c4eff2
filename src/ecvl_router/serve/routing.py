"""Live routing decisions: a router bundle and its feature extractor; queries in (batched), edge or cloud out."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ecvl_router.features.extractor import ExtractorSettings, FeatureExtractor
from ecvl_router.features.imaging import ImageInput, open_image
from ecvl_router.features.memory_cache import CacheCounts, MemoryEmbeddingCache
from ecvl_router.scenarios import Scenario
from ecvl_router.serve.batching import MicroBatcher
from ecvl_router.serve.config import BatchingPolicy, EmbeddingCachePolicy, EncoderRuntimePolicy
from ecvl_router.serve.conversation import Route
from ecvl_router.learning.training import TrainedRouter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """Where one query goes and why: P(edge competent) ``p`` against the scenario's threshold ``tau``.

    A conversation kept on its backend (``sticky``) is not scored: ``p`` is None, ``router_ms`` and ``batch_size`` 0.
    ``router_ms`` is the time of the batch the decision was made in, ``batch_size`` that batch's size.
    """

    route: Route
    p: float | None
    tau: float
    scenario: str
    router_ms: float
    sticky: bool = False
    mes: float | None = None
    batch_size: int = 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


ImageSource = ImageInput | Callable[[], Image.Image | None]
"""A query's image: a path, encoded bytes or a PIL image, or a function decoding it (its errors are the query's)."""


@dataclass(frozen=True)
class Query:
    """One routing decision to make: the question, its image (or None), the scenario, an optional MES and an optional
    source (the dataset's ``source`` the query belongs to, for routers that read it, such as ``lookup`` and ``profile``)."""

    question: str
    image: ImageSource | None
    scenario: str
    mes: float | None = None
    source: str | None = None

    def load_image(self) -> Image.Image | None:
        if self.image is None:
            return None
        return self.image() if callable(self.image) else open_image(self.image)


@dataclass(frozen=True)
class RouterStats:
    """Counts for the gateway's metrics: batches by size, and embedding-cache lookups by encoder (text, image)."""

    batch_sizes: dict[int, int]
    cache: dict[str, CacheCounts]
    cache_bytes: int


class QueryRouter:
    """A trained router with the encoders it was trained on; safe to call from any thread.

    Decisions are micro-batched (:class:`~ecvl_router.serve.batching.MicroBatcher`): concurrent queries go
    through the text encoder, the image encoder and the router network together, with the same p as one by
    one. Embeddings are kept in an in-memory LRU cache of ``embedding_cache.max_mb``. ``digest`` is the content
    hash of the bundle it was loaded from (``bundle_digest``; None for a router that was not).
    """

    def __init__(
        self,
        trained: TrainedRouter,
        extractor: FeatureExtractor,
        bundle: Path | None = None,
        *,
        batching: BatchingPolicy | None = None,
        embedding_cache: EmbeddingCachePolicy | None = None,
        digest: str | None = None,
    ) -> None:
        self.trained = trained
        self.extractor = extractor
        self.bundle = bundle
        self.digest = digest
        batching = batching or BatchingPolicy()
        max_bytes = (embedding_cache or EmbeddingCachePolicy()).max_bytes
        self.memory = MemoryEmbeddingCache(max_bytes) if max_bytes else None
        self._batcher: MicroBatcher[Query, Decision] = MicroBatcher(
            self.decide_batch, max_batch=batching.max_batch, max_wait_ms=batching.max_wait_ms, in_flight=batching.in_flight,
            name="router",
        )

    @classmethod
    def from_bundle(
        cls,
        bundle: Path,
        *,
        batching: BatchingPolicy | None = None,
        embedding_cache: EmbeddingCachePolicy | None = None,
        encoders: ExtractorSettings | None = None,
        encoder_runtime: EncoderRuntimePolicy | None = None,
    ) -> QueryRouter:
        """Load a run folder written by ``ecvl-router train`` and the encoders its manifest names.

        ``encoders`` replaces them, e.g. by their verified ONNX export; encoders that are neither the bundle's
        nor verified stand-ins for them are a BundleError (a router is never fed another encoder's embeddings).
        ``encoder_runtime`` chooses where torch encoders run (default: their ONNX export where ONNX Runtime is
        installed, exported on first use; see :func:`~ecvl_router.features.onnx_cache.serving_extractor`).
        """
        from ecvl_router.features.onnx_cache import serving_extractor
        from ecvl_router.learning.bundle import BundleError, bundle_digest, load_bundle
        from ecvl_router.learning.runs import default_cache_dir

        trained = load_bundle(Path(bundle))
        digest = bundle_digest(Path(bundle))
        try:
            settings = ExtractorSettings(**trained.manifest["settings"]["extractor"])
        except (KeyError, TypeError) as exc:
            raise BundleError(f"{bundle}/manifest.json: no feature extractor settings ({exc})") from None
        recorded = trained.manifest["settings"].get("features") or {}
        if encoders is not None and not recorded:
            raise BundleError(f"{bundle}/manifest.json: records no encoder identities, so it can be served with its own encoders only")
        runtime = encoder_runtime or EncoderRuntimePolicy()
        own = encoders is None and {"text_encoder", "image_encoder"} <= set(recorded)  # then a cached export is found by them
        identities = (recorded["text_encoder"], recorded["image_encoder"]) if own else None
        extractor = serving_extractor(encoders or settings, engine=runtime.engine, identities=identities,
                                      cache_dir=runtime.cache_dir or default_cache_dir() / "onnx")
        for kind, encoder in (("text", extractor.text_encoder), ("image", extractor.image_encoder)):
            trained_on = recorded.get(f"{kind}_encoder", encoder.identity)
            if trained_on not in (encoder.identity, getattr(encoder, "source_identity", None)):
                raise BundleError(
                    f"{bundle}: the router was trained on the {kind} encoder {trained_on}, not on {encoder.identity}; "
                    "serve it with its own encoders or their verified export (ecvl-router export-encoders --bundle)"
                )
        return cls(trained, extractor, Path(bundle), batching=batching, embedding_cache=embedding_cache, digest=digest)

    @property
    def scenarios(self) -> dict[str, Scenario]:
        """The bundle's scenarios by name, in training order."""
        return {name: choice.scenario for name, choice in self.trained.choices.items()}

    def tau(self, scenario: str) -> float:
        return self.trained.choice(scenario).tau

    def model_names(self) -> dict[Route, str | None]:
        """The edge and cloud model names the bundle was trained for (None where the manifest has none)."""
        task = ((self.trained.manifest or {}).get("settings") or {}).get("task") or {}
        return {"edge": task.get("edge"), "cloud": task.get("cloud")}

    @property
    def serves_any_mes(self) -> bool:
        """Whether the router predicts scores (``ecvl-multi``) and so serves an MES it was not trained at."""
        return bool(getattr(self.trained.router, "fitted_pair", None))

    @property
    def score_scale(self) -> tuple[float, float]:
        """The training data's score scale, as the bundle's manifest records it (unbounded when it does not)."""
        scale = (self.trained.manifest or {}).get("score_scale") or [float("-inf"), float("inf")]
        return float(scale[0]), float(scale[1])

    def submit(self, question: str, image: ImageSource | None, scenario: str, *, mes: float | None = None,
               source: str | None = None) -> Future[Decision]:
        """Route one query under ``scenario`` (a name of :attr:`scenarios`), at its MES or at ``mes``, of ``source`` if
        known, in a batch."""
        return self._batcher.submit(Query(question, image, scenario, mes, source))

    def decide(self, question: str, image: ImageSource | None, scenario: str, *, mes: float | None = None,
               source: str | None = None) -> Decision:
        """:meth:`submit`, waiting for the decision."""
        return self.submit(question, image, scenario, mes=mes, source=source).result()

    def decide_batch(self, queries: Sequence[Query]) -> list[Decision | Exception]:
        """Decisions for ``queries`` computed together (each failing query gets its exception, the others a decision)."""
        started = time.perf_counter()
        results: list[Decision | Exception | None] = [None] * len(queries)
        images: list[Image.Image | None] = []
        rows: list[int] = []
        for row, loaded in enumerate(self.extractor.run_live([query.load_image for query in queries])):
            if isinstance(loaded, Exception):  # the query's own error, e.g. an undecodable image
                results[row] = loaded
            else:
                images.append(loaded)
                rows.append(row)
        if rows:
            features = self.extractor.extract_live([queries[row].question for row in rows], images, memory=self.memory)
            features = features.with_sources([queries[row].source for row in rows])
            groups: dict[tuple[str, float | None], list[int]] = {}
            for position, row in enumerate(rows):
                groups.setdefault((queries[row].scenario, queries[row].mes), []).append(position)
            for (scenario, mes), positions in groups.items():
                try:
                    to_edge, p, tau = self.trained.decide(features.take(np.asarray(positions)), scenario, mes=mes)
                except (KeyError, ValueError) as error:
                    for position in positions:
                        results[rows[position]] = error
                    continue
                served_mes = self.trained.choice(scenario).scenario.mes if mes is None else mes
                for index, position in enumerate(positions):
                    results[rows[position]] = Decision(
                        route="edge" if to_edge[index] else "cloud", p=float(p[index]), tau=float(tau), scenario=scenario,
                        router_ms=0.0, mes=served_mes, batch_size=len(queries),
                    )
        router_ms = (time.perf_counter() - started) * 1000
        return [replace(result, router_ms=router_ms) if isinstance(result, Decision) else result for result in results]  # type: ignore[misc]

    def stats(self) -> RouterStats:
        """Batch sizes so far and the embedding cache's lookups by encoder (``text``, ``image``)."""
        counts = self.memory.counts() if self.memory is not None else {}
        identities = {"text": self.extractor.text_encoder.identity, "image": self.extractor.image_encoder.identity}
        return RouterStats(
            batch_sizes=self._batcher.batch_sizes(),
            cache={kind: counts.get(identity, CacheCounts()) for kind, identity in identities.items()} if self.memory else {},
            cache_bytes=self.memory.size_bytes if self.memory is not None else 0,
        )

    def warm_up(self) -> None:
        """One decision with and one without an image, so the first real request is not slower."""
        scenario = next(iter(self.trained.choices))
        self.decide("warm-up", Image.new("RGB", (64, 64), (127, 127, 127)), scenario)
        self.decide("warm-up", None, scenario)

    def close(self) -> None:
        """Stop the batching thread (a later decision raises RuntimeError) and the extractor's worker threads."""
        self._batcher.close()
        self.extractor.close()
