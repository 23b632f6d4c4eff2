"""Router bundles: a trained router's per-scenario states and thresholds in one directory.

Layout::

    bundle/
      manifest.json          router name and hyperparameters, seed, per-scenario settings
                             (MES, alpha, beta, gamma, cloud_allowed; for a guaranteed scenario
                             max_quality_drop, confidence, its promise and the p-value per tau),
                             tau*, best epoch, validation RCS* and metrics, per-epoch validation
                             curves, plus what the caller adds
                             (label rule, edge and cloud model names, feature extractor, inputs)
      states/epoch-007/      one saved router (``Router.save``) per distinct best epoch
        router.json
        state.pt | state.pkl

Neural states are torch state dicts read with ``weights_only=True``; the gbdt state is a pickle, which
can execute code when read: load only bundles from sources you trust.
"""

from __future__ import annotations

import hashlib
import math
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ecvl_router.manifest import build_manifest, file_sha256, read_manifest, write_manifest
from ecvl_router.routers import load_router
from ecvl_router.scenarios import Scenario
from ecvl_router.learning.training import EpochResult, ScenarioChoice, TrainedRouter
from ecvl_router.learning.thresholds import ThresholdChoice

BUNDLE_FORMAT = 1
STATES_DIR = "states"
_RESERVED = ("bundle_format", "router", "scenarios", "history")


class BundleError(ValueError):
    """A directory is not a readable router bundle."""


def save_bundle(
    trained: TrainedRouter, directory: Path, *, extra_manifest: dict[str, Any] | None = None, overwrite: bool = False
) -> Path:
    """Write ``trained`` as a bundle into ``directory`` and return it.

    ``extra_manifest`` adds top-level manifest entries; its ``inputs`` and ``settings`` mappings become
    the manifest's ``inputs`` and extend its ``settings``. The bundle is written to a temporary sibling
    and renamed into place; an existing ``directory`` is replaced only with ``overwrite``.
    """
    directory = Path(directory)
    extra = dict(extra_manifest or {})
    clash = [key for key in _RESERVED if key in extra]
    if clash:
        raise ValueError(f"extra_manifest may not set {clash[0]!r}: the bundle writes it")
    if directory.exists() and not overwrite:
        raise FileExistsError(f"{directory} exists; pass overwrite=True to replace it")
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        for epoch in sorted(trained.states):
            trained.router_at(epoch).save(staging / _state_dir(epoch))
        router = trained.router
        manifest = build_manifest(
            "train",
            inputs=extra.pop("inputs", {}),
            settings={
                "router": router.name,
                "params": router.get_params(),
                "seed": router.random_state,
                "edge_share": trained.edge_share,
                "recipe": trained.recipe,
                **extra.pop("settings", {}),
            },
            bundle_format=BUNDLE_FORMAT,
            router=router.name,
            scenarios={name: _choice_entry(choice) for name, choice in trained.choices.items()},
            history={
                name: [{"epoch": r.epoch, "tau": r.tau, "rcs": _json_number(r.rcs)} for r in results]
                for name, results in trained.history.items()
            },
            **extra,
        )
        write_manifest(staging, manifest)
        if directory.exists():
            shutil.rmtree(directory)
        staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def load_bundle(directory: Path) -> TrainedRouter:
    """The TrainedRouter ``save_bundle`` wrote into ``directory`` (with its ``manifest``)."""
    directory = Path(directory)
    try:
        manifest = read_manifest(directory)
    except ValueError as exc:  # JSON and UTF-8 decoding errors
        raise BundleError(f"{directory}/manifest.json: not a valid manifest ({exc})") from exc
    if manifest is None:
        raise BundleError(f"{directory}: no manifest.json; not a router bundle")
    if manifest.get("bundle_format") != BUNDLE_FORMAT:
        raise BundleError(f"{directory}: bundle format {manifest.get('bundle_format')!r}, expected {BUNDLE_FORMAT}")
    try:
        choices = {name: _choice_from(entry) for name, entry in manifest["scenarios"].items()}
        history = {
            name: [EpochResult(int(r["epoch"]), float(r["tau"]), _float(r["rcs"])) for r in results]
            for name, results in manifest["history"].items()
        }
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{directory}/manifest.json: malformed scenario entry ({exc})") from exc
    states = {}
    router = None
    for epoch in sorted({choice.epoch for choice in choices.values()}):
        try:
            router = load_router(directory / _state_dir(epoch))
        except (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
            raise BundleError(f"{directory}: cannot read the router state of epoch {epoch}: {exc}") from exc
        if router.name != manifest["router"]:
            raise BundleError(f"{directory}: state of epoch {epoch} is a {router.name!r} router, manifest says {manifest['router']!r}")
        states[epoch] = router.get_state()
    if router is None:
        raise BundleError(f"{directory}/manifest.json: no scenarios")
    settings = manifest["settings"]
    return TrainedRouter(
        router, choices, states, history, edge_share=settings.get("edge_share"), recipe=settings.get("recipe"), manifest=manifest
    )


def bundle_digest(directory: Path, length: int = 12) -> str:
    """A short content hash of a bundle: sha256 over its files' relative paths and bytes, hex, ``length`` digits.

    Two bundles share it exactly when they hold the same files, wherever they lie. Raises BundleError when ``directory`` is not a folder.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise BundleError(f"{directory}: not a folder; not a router bundle")
    digest = hashlib.sha256()
    for path in sorted(path for path in directory.rglob("*") if path.is_file()):
        digest.update(f"{path.relative_to(directory).as_posix()}\0{file_sha256(path)}\0".encode())
    return digest.hexdigest()[:length]


def _state_dir(epoch: int) -> str:
    return f"{STATES_DIR}/epoch-{epoch:03d}"


def _choice_entry(choice: ScenarioChoice) -> dict[str, Any]:
    threshold = choice.threshold
    return {
        **choice.scenario.model_dump(),
        "tau": threshold.tau,
        "best_epoch": choice.epoch,
        "fallback": choice.fallback,
        "tau_by_mes": [[level, tau] for level, tau in sorted(choice.tau_by_mes.items())] if choice.tau_by_mes else None,
        "state": _state_dir(choice.epoch),
        "val_rcs": _json_number(threshold.rcs),
        "val_metrics": {key: _json_number(value) for key, value in threshold.metrics.items()},
        "grid": [float(tau) for tau in threshold.grid],
        "rcs_by_tau": [_json_number(rcs) for rcs in threshold.rcs_by_tau],
        **(
            {"promise": choice.scenario.promise(), "pvalue_by_tau": [_json_number(pv) for pv in threshold.pvalues]}
            if choice.scenario.guaranteed
            else {}
        ),
    }


def _choice_from(entry: dict[str, Any]) -> ScenarioChoice:
    scenario = Scenario(**{key: entry[key] for key in Scenario.model_fields if key in entry})
    threshold = ThresholdChoice(
        tau=float(entry["tau"]),
        rcs=_float(entry["val_rcs"]),
        metrics={key: _float(value) if key != "n" else int(value) for key, value in entry["val_metrics"].items()},
        grid=np.asarray(entry["grid"], dtype=np.float64),
        rcs_by_tau=np.asarray([_float(v) for v in entry["rcs_by_tau"]], dtype=np.float64),
        pvalues=np.asarray([_float(v) for v in entry.get("pvalue_by_tau", [])], dtype=np.float64),
    )
    return ScenarioChoice(scenario=scenario, epoch=int(entry["best_epoch"]), threshold=threshold, fallback=entry.get("fallback"),
                          tau_by_mes={float(level): float(tau) for level, tau in entry["tau_by_mes"]} if entry.get("tau_by_mes") else None)


def _json_number(value: Any) -> float | int | None:
    """A plain number for JSON; NaN becomes null."""
    if isinstance(value, (int, np.integer)):
        return int(value)
    number = float(value)
    return None if math.isnan(number) else number


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)
