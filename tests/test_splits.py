import numpy as np
import pytest

from ecvl_router.data.splits import holdout_split, stratified_split, strata_of


def _data(n=1000, seed=3):
    rng = np.random.default_rng(seed)
    sources = rng.choice(["chart", "ocr", "count", "table"], size=n, p=[0.4, 0.3, 0.2, 0.1])
    labels = (rng.random(n) < np.where(sources == "chart", 0.8, 0.4)).astype(int)
    return sources, labels


def test_ratios_and_joint_stratification():
    sources, labels = _data()
    split = stratified_split(strata_of(sources, labels), seed=0)
    assert split.sizes() == (600, 200, 200)
    everything = np.concatenate([split.train, split.val, split.test])
    assert sorted(everything.tolist()) == list(range(1000))
    for stratum in set(strata_of(sources, labels)):
        mask = strata_of(sources, labels) == stratum
        total = mask.sum()
        for part, ratio in ((split.train, 0.6), (split.val, 0.2), (split.test, 0.2)):
            assert abs(mask[part].sum() - ratio * total) <= 1, stratum


def test_deterministic_for_a_seed_and_different_across_seeds():
    strata = strata_of(*_data())
    a, b, c = stratified_split(strata, seed=7), stratified_split(strata, seed=7), stratified_split(strata, seed=8)
    assert all(np.array_equal(x, y) for x, y in zip((a.train, a.val, a.test), (b.train, b.val, b.test)))
    assert not np.array_equal(a.test, c.test)


def test_holdout_sources():
    sources, labels = _data()
    split = holdout_split(sources, labels, ["ocr", "table"], seed=0)
    assert set(sources[split.test]) == {"ocr", "table"}
    assert set(sources[split.train]) == set(sources[split.val]) == {"chart", "count"}
    assert len(split.train) + len(split.val) + len(split.test) == len(sources)
    with pytest.raises(ValueError, match="held-out sources not in the data: maps"):
        holdout_split(sources, labels, ["maps"])
    with pytest.raises(ValueError, match="nothing left to train on"):
        holdout_split(sources, labels, ["chart", "ocr", "count", "table"])
