"""The study's routing: one gateway whose "scenarios" are the study's (scenario, policy) pairs.

A study request is routed by the policy assigned to its session. :class:`PolicyRouter` offers the
interface of :class:`~ecvl_router.serve.routing.QueryRouter` over keys ``<scenario>/<policy>``, so an
ordinary :class:`~ecvl_router.serve.gateway.Gateway` serves the study with the main gateway's backends,
fallbacks, retries, metrics and decision log. Fixed policies decide like the ``all-small`` and
``all-large`` routers (p = 1 or 0 against the fixed threshold 0.5); router policies ask their bundle.
"""

from __future__ import annotations

import math

from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path

from ecvl_router.learning.bundle import BundleError, load_bundle
from ecvl_router.config import ConfigError
from ecvl_router.features.extractor import ExtractorSettings, FeatureExtractor
from ecvl_router.routers import FixedPolicy
from ecvl_router.scenarios import Scenario
from ecvl_router.serve.gateway import Gateway
from ecvl_router.serve.routing import Decision, ImageSource, QueryRouter, Route
from ecvl_router.study.config import StudyConfig

FIXED_P: dict[Route, float] = {"edge": 1.0, "cloud": 0.0}
"""P(edge competent) of the fixed policies, as the all-small and all-large routers give it."""


def policy_key(scenario: str, policy: str) -> str:
    """The study gateway's scenario name for ``policy`` under ``scenario``."""
    return f"{scenario}/{policy}"


class PolicyRouter:
    """Decisions for every (scenario, policy) of a study; ``decide`` is safe to call from any thread."""

    def __init__(self, scenarios: dict[str, Scenario], plans: dict[str, QueryRouter | Route], model_names: dict[Route, str | None]) -> None:
        missing = set(scenarios) ^ set(plans)
        if missing:
            raise ValueError(f"scenarios and plans differ in {sorted(missing)}")
        self._scenarios = scenarios
        self._plans = plans
        self._model_names = model_names

    @classmethod
    def load(cls, study: StudyConfig, model_names: dict[Route, str | None]) -> PolicyRouter:
        """Load the study's bundles (encoders shared between bundles with the same settings) and check them.

        ``model_names`` are the edge and cloud models the gateway's own bundle was trained for: a bundle
        trained for another pair, or for a scenario at another MES than the study's, is a ConfigError.
        """
        extractors: dict[ExtractorSettings, FeatureExtractor] = {}
        routers: dict[Path, QueryRouter] = {}
        scenarios: dict[str, Scenario] = {}
        plans: dict[str, QueryRouter | Route] = {}
        for policy in study.policies:
            for spec in study.scenarios:
                key = policy_key(spec.name, policy.name)
                scenarios[key] = Scenario(name=key, mes=spec.mes, alpha=0, beta=0, gamma=0, description=spec.title)
                if policy.route is not None:
                    plans[key] = policy.route
                    continue
                path = policy.bundles[spec.name]
                if path not in routers:
                    routers[path] = _load_router(path, extractors, policy.name)
                _check_bundle(routers[path], spec.name, spec.mes, model_names, policy.name)
                plans[key] = routers[path]
        return cls(scenarios, plans, model_names)

    @property
    def scenarios(self) -> dict[str, Scenario]:
        return self._scenarios

    def tau(self, key: str) -> float:
        plan = self._plans[key]
        return FixedPolicy.fixed_threshold if isinstance(plan, str) else plan.tau(_scenario_of(key))

    def model_names(self) -> dict[Route, str | None]:
        return dict(self._model_names)

    serves_any_mes = False
    """Each policy routes at its scenario's MES."""

    @property
    def score_scale(self) -> tuple[float, float]:
        return (-math.inf, math.inf)

    def submit(self, question: str, image: ImageSource | None, key: str, *, mes: float | None = None,
               source: str | None = None) -> Future[Decision]:
        """The decision of ``key``'s policy for one query (of ``source``, if known); its ``scenario`` is ``key`` (``mes``:
        its own MES only)."""
        plan = self._plans[key]
        decision: Future[Decision] = Future()
        if isinstance(plan, str):
            decision.set_result(Decision(plan, FIXED_P[plan], FixedPolicy.fixed_threshold, key, 0.0))
            return decision

        def relabel(routed: Future[Decision]) -> None:
            error = routed.exception()
            if error is not None:
                decision.set_exception(error)
            else:
                decision.set_result(replace(routed.result(), scenario=key))

        plan.submit(question, image, _scenario_of(key), mes=mes, source=source).add_done_callback(relabel)
        return decision

    def decide(self, question: str, image: ImageSource | None, key: str, *, mes: float | None = None,
               source: str | None = None) -> Decision:
        """:meth:`submit`, waiting for the decision."""
        return self.submit(question, image, key, mes=mes, source=source).result()

    def warm_up(self) -> None:
        for router in self._routers():
            router.warm_up()

    def close(self) -> None:
        """Stop the batching threads of the study's routers."""
        for router in self._routers():
            router.close()

    def _routers(self) -> list[QueryRouter]:
        return list({id(plan): plan for plan in self._plans.values() if not isinstance(plan, str)}.values())


def build_study_gateway(gateway: Gateway, study: StudyConfig) -> Gateway:
    """A gateway routing the study's queries by policy, with ``gateway``'s backends, metrics and decision log."""
    router = PolicyRouter.load(study, gateway.router.model_names())
    router.warm_up()
    settings = gateway.config
    config = settings.model_copy(update={
        "default_scenario": None,
        "decision_log": None,
        "edge": settings.edge.model_copy(update={"model": gateway.backends["edge"].model}),
        "cloud": settings.cloud.model_copy(update={"model": gateway.backends["cloud"].model}),
    })
    study_gateway = Gateway(config, router, metrics=gateway.metrics)  # type: ignore[arg-type]  # PolicyRouter acts as a QueryRouter
    study_gateway.decision_log = gateway.decision_log
    study_gateway.owns_router = True
    return study_gateway


def _scenario_of(key: str) -> str:
    return key.rsplit("/", 1)[0]


def _load_router(path: Path, extractors: dict[ExtractorSettings, FeatureExtractor], policy: str) -> QueryRouter:
    try:
        trained = load_bundle(path)
        settings = ExtractorSettings(**trained.manifest["settings"]["extractor"])
    except (BundleError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"study policy {policy!r}: cannot load the router bundle {path}: {exc}") from None
    if settings not in extractors:
        extractors[settings] = FeatureExtractor.from_settings(settings)
    return QueryRouter(trained, extractors[settings], path)


def _check_bundle(router: QueryRouter, scenario: str, mes: float, model_names: dict[Route, str | None], policy: str) -> None:
    where = f"study policy {policy!r}: bundle {router.bundle}"
    if scenario not in router.scenarios:
        raise ConfigError(f"{where} has no scenario {scenario!r}; it has: {', '.join(router.scenarios)}")
    trained = router.scenarios[scenario]
    if trained.mes != mes:
        raise ConfigError(
            f"{where} was trained for scenario {scenario!r} at MES {trained.mes:g}, the study's scenario has MES {mes:g}; "
            f"train it with `--scenario {scenario} --mes {mes:g}`"
        )
    if not trained.cloud_allowed:
        raise ConfigError(f"{where}: scenario {scenario!r} does not allow the cloud; a study compares edge and cloud answers")
    for role, expected in model_names.items():
        named = router.model_names()[role]
        if named is not None and expected is not None and named != expected:
            raise ConfigError(f"{where} was trained for the {role} model {named!r}, the gateway's bundle for {expected!r}")
