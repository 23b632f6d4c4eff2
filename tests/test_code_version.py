"""The training code version changes with any router, training or routing-task source, and only with those."""

from __future__ import annotations

import shutil
from pathlib import Path

import ecvl_router
from ecvl_router.code_version import training_code_version, training_source_files

PACKAGE = Path(ecvl_router.__file__).resolve().parent
LEARNING = ("learning/training.py", "learning/training_set.py", "learning/thresholds.py", "learning/routing_task.py")


def _copy(tmp_path: Path) -> Path:
    copy = tmp_path / "ecvl_router"
    shutil.copytree(PACKAGE / "routers", copy / "routers", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "learning").mkdir()
    for name in (*LEARNING, "metrics.py"):
        shutil.copy(PACKAGE / name, copy / name)
    return copy


def test_the_version_covers_the_routers_training_and_the_routing_task() -> None:
    names = {path.relative_to(PACKAGE).as_posix() for path in training_source_files()}
    assert {*LEARNING, "routers/__init__.py", "routers/ecvl.py"} <= names
    assert all(name.startswith("routers/") or name in LEARNING for name in names)
    version = training_code_version()
    assert len(version) == 16 and int(version, 16) >= 0 and training_code_version() == version


def test_a_change_to_any_hashed_file_changes_the_version(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    original = training_code_version(copy)
    assert original == training_code_version(PACKAGE)
    for name in ("routers/ecvl.py", *LEARNING):
        changed = _copy(tmp_path / name.replace("/", "-"))
        (changed / name).write_text((changed / name).read_text() + "\n# a fix\n")
        assert training_code_version(changed) != original, name
    added = _copy(tmp_path / "added")
    (added / "routers" / "new_router.py").write_text('"""A new router."""\n')
    assert training_code_version(added) != original


def test_other_files_do_not_change_the_version(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    original = training_code_version(copy)
    (copy / "metrics.py").write_text((copy / "metrics.py").read_text() + "\n# unrelated\n")
    assert training_code_version(copy) == original


def test_a_new_training_code_version_retrains_a_cached_router(tmp_path: Path, monkeypatch) -> None:
    import numpy as np

    from ecvl_router.data.splits import Split
    from ecvl_router.experiments import trained_cache
    from ecvl_router.learning.routing_task import RoutingTask
    from ecvl_router.scenarios import SCENARIOS
    from tests.routing_synthetic import synthetic_problem

    features, labels, pair = synthetic_problem(60, seed=0)
    rows = np.arange(60)
    task = RoutingTask(pair, labels, Split(rows[:36], rows[36:48], rows[48:]), 6.0, "mes", 1.0, 0)

    def train() -> bool:
        _, cached = trained_cache.train_or_load(task, features, "gbdt", [SCENARIOS["quality"]], cache_dir=tmp_path,
                                                feature_identity={"stand-in": 1}, router_params={"max_iter": 3})
        return cached

    assert train() is False and train() is True
    monkeypatch.setattr(trained_cache, "training_code_version", lambda: "after-a-fix")
    assert train() is False and train() is True
