"""Live routing decisions: a router bundle and its feature extractor, one query in, edge or cloud out."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ecvl_router.features.extractor import ExtractorSettings, FeatureExtractor
from ecvl_router.features.imaging import ImageInput
from ecvl_router.scenarios import Scenario
from ecvl_router.serve.conversation import Route
from ecvl_router.training import TrainedRouter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    """Where one query goes and why: P(edge competent) ``p`` against the scenario's threshold ``tau``.

    A conversation kept on the cloud (``sticky``) is not scored: ``p`` is None and ``router_ms`` 0.
    """

    route: Route
    p: float | None
    tau: float
    scenario: str
    router_ms: float
    sticky: bool = False
    mes: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class QueryRouter:
    """A trained router with the encoders it was trained on; :meth:`decide` is safe to call from any thread."""

    def __init__(self, trained: TrainedRouter, extractor: FeatureExtractor, bundle: Path | None = None) -> None:
        self.trained = trained
        self.extractor = extractor
        self.bundle = bundle
        self._lock = threading.Lock()

    @classmethod
    def from_bundle(cls, bundle: Path) -> QueryRouter:
        """Load a run folder written by ``ecvl-router train`` and the encoders its manifest names."""
        from ecvl_router.bundle import BundleError, load_bundle

        trained = load_bundle(Path(bundle))
        try:
            settings = ExtractorSettings(**trained.manifest["settings"]["extractor"])
        except (KeyError, TypeError) as exc:
            raise BundleError(f"{bundle}/manifest.json: no feature extractor settings ({exc})") from None
        return cls(trained, FeatureExtractor.from_settings(settings), Path(bundle))

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

    def decide(self, question: str, image: ImageInput | None, scenario: str, *, mes: float | None = None) -> Decision:
        """Route one query under ``scenario`` (a name of :attr:`scenarios`), at its MES or at ``mes``."""
        started = time.perf_counter()
        with self._lock:
            features = self.extractor.extract_one(question, image)
            to_edge, p, tau = self.trained.decide(features, scenario, mes=mes)
        return Decision(
            route="edge" if to_edge[0] else "cloud",
            p=float(p[0]),
            tau=float(tau),
            scenario=scenario,
            router_ms=(time.perf_counter() - started) * 1000,
            mes=self.trained.choice(scenario).scenario.mes if mes is None else mes,
        )

    def warm_up(self) -> None:
        """One decision with and one without an image, so the first real request is not slower."""
        from PIL import Image

        scenario = next(iter(self.trained.choices))
        self.decide("warm-up", Image.new("RGB", (64, 64), (127, 127, 127)), scenario)
        self.decide("warm-up", None, scenario)
