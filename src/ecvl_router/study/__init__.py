"""The online user study (paper, Appendix B.3): participants use the router live and rate its answers.

Enabled by a ``study`` section in the gateway configuration (:class:`StudyConfig`), the gateway serves a
page at ``/study``; each participant session is assigned a routing policy by a balanced, seeded
assignment (:func:`assign_policy`), and every question, decision, answer time and rating is kept in a
SQLite database (:class:`StudyStore`). ``ecvl-router study-report`` turns the database into the
Figure 10 analogue: APSP and latency per policy and scenario, with confidence intervals.
"""

from ecvl_router.study.assignment import assign_policy
from ecvl_router.study.config import DEFAULT_SCENARIOS, StudyConfig, StudyPolicy, StudyScenario
from ecvl_router.study.store import StoreError, StudyStore

__all__ = ["DEFAULT_SCENARIOS", "StoreError", "StudyConfig", "StudyPolicy", "StudyScenario", "StudyStore", "assign_policy"]
