import numpy as np
import pytest

from ecvl_router.labels import competence_labels


def test_mes_rule_case_a_edge_reaches_cloud_or_mes_floor():
    # edge >= min(cloud, MES): edge 6 vs cloud 9 at MES 6 -> competent (reaches the MES floor)
    # edge 5 vs cloud 5 at MES 6 -> Case B (cloud < MES) also holds; edge 7 vs cloud 8 -> Case A via MES
    edge = np.array([6, 5, 7, 4])
    cloud = np.array([9, 9, 8, 4])
    assert competence_labels(edge, cloud, mes=6).tolist() == [1, 0, 1, 1]


def test_mes_rule_case_b_cloud_fails_mes():
    # cloud below MES: edge is competent even when it scores lower than the cloud
    edge = np.array([1, 2, 5])
    cloud = np.array([5, 3, 5.9])
    assert competence_labels(edge, cloud, mes=6).tolist() == [1, 1, 1]


def test_mes_rule_ties_at_the_boundary():
    # cloud exactly at MES is not Case B; edge exactly at MES satisfies Case A
    assert competence_labels([6], [6], mes=6).tolist() == [1]
    assert competence_labels([5.999], [6], mes=6).tolist() == [0]
    assert competence_labels([6], [10], mes=6).tolist() == [1]
    # edge equal to a cloud score below MES: Case A (and B)
    assert competence_labels([4], [4], mes=6).tolist() == [1]


def test_mes_rule_matches_the_definition_exhaustively():
    edge, cloud = np.meshgrid(np.arange(1, 11), np.arange(1, 11))
    edge, cloud = edge.ravel(), cloud.ravel()
    for mes in range(1, 11):
        expected = [int(e >= min(c, mes) or c < mes) for e, c in zip(edge, cloud)]
        assert competence_labels(edge, cloud, mes=mes).tolist() == expected


def test_win_hard_and_win_soft():
    edge = np.array([5, 6, 7, 3])
    cloud = np.array([6, 6, 6, 5])
    assert competence_labels(edge, cloud, mes=6, rule="win-hard").tolist() == [0, 1, 1, 0]
    assert competence_labels(edge, cloud, mes=6, rule="win-soft", k=1).tolist() == [1, 1, 1, 0]
    assert competence_labels(edge, cloud, mes=6, rule="win-soft", k=2).tolist() == [1, 1, 1, 1]


def test_labels_reject_bad_input():
    with pytest.raises(ValueError, match="shape"):
        competence_labels([1, 2], [1], mes=6)
    with pytest.raises(ValueError, match="unknown label rule"):
        competence_labels([1], [1], mes=6, rule="majority")
