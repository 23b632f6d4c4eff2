"""The bundled demo benchmark: a simulated multimodal Response Score Dataset that lets everything run offline.

``generate_demo(out_dir)`` renders image-text items with Pillow in six task families that mirror the
paper's benchmarks (charts, cluttered scenes, noisy text, table/diagram reasoning, fine attributes,
open description) plus a family of text-only questions (about 10 % of the items are text-only) and
simulates the answers of a pool of eight VLMs from 0.25B to 38B parameters (``DEMO_MODELS``, the sizes of
the paper's roster). Scores and latencies come from the latent model documented in
``ecvl_router.data.demo.simulation`` and docs/demo-benchmark.md, calibrated once to the paper's reported
statistics. Every file it writes says that the data are simulated. The simulation's ground truth, written
next to the dataset for the ``bayes`` reference policy only, is read through ``truth``.
"""

from ecvl_router.data.demo.generator import DEMO_NAME, DemoSummary, generate_demo, is_demo_output
from ecvl_router.data.demo.simulation import DEMO_MODELS, DEMO_PAIRS, DemoModel
from ecvl_router.data.demo.truth import SimulationTruth, bayes_probabilities, load_truth

__all__ = [
    "DEMO_MODELS", "DEMO_NAME", "DEMO_PAIRS", "DemoModel", "DemoSummary", "SimulationTruth",
    "bayes_probabilities", "generate_demo", "is_demo_output", "load_truth",
]
