"""The bundled demo benchmark: a simulated multimodal Response Score Dataset that lets everything run offline.

``generate_demo(out_dir)`` renders image-text items with Pillow in six task families that mirror the
paper's benchmarks (charts, cluttered scenes, noisy text, table/diagram reasoning, fine attributes,
open description; about 3 % text-only) and simulates the answers of a pool of eight VLMs from 0.25B to 38B
parameters (``DEMO_MODELS``, the sizes of the paper's roster). Scores and latencies come from the latent model documented in
``ecvl_router.data.demo.simulation`` and docs/demo-benchmark.md, calibrated once to the paper's reported
statistics. Every file it writes says that the data are simulated.
"""

from ecvl_router.data.demo.generator import DEMO_NAME, DemoSummary, generate_demo, is_demo_output
from ecvl_router.data.demo.simulation import DEMO_MODELS, DEMO_PAIRS, DemoModel

__all__ = ["DEMO_MODELS", "DEMO_NAME", "DEMO_PAIRS", "DemoModel", "DemoSummary", "generate_demo", "is_demo_output"]
