"""Latency and fidelity of the feature stage for one live routing decision on CPU.

Latency: median and p95 over --runs repetitions at batch 1 (a --image-px square JPEG as a gateway
receives it, and a --words-word question) of every component, for the naive pipeline
(sentence-transformers ``encode`` + MobileNetV2 float32 at 224 px, one after the other) and the
engineered one (``FeatureExtractor.extract_one`` with the settings given, by default the library's),
each speed option on its own, and extract_one in several configurations. Within a table, variants
are timed in interleaved blocks of 10 calls, so load from other processes affects them alike; the
configurations of extract_one are timed one after another instead (the thread pools of different
configurations disturb each other when alternated). On cores shared with other work, the minimum
approximates the idle-machine latency.

Fidelity: cosine similarity of each option's embeddings to the reference (float32 MiniLM as
sentence-transformers computes it; float32 MobileNetV2 at 224 px) on the questions and images of
an RSD (--rsd; default: --items freshly rendered demo-benchmark tasks), and the Pearson
correlation of the pairwise-similarity matrices (is the geometry a router learns from preserved?).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/encoder_latency.py --threads 2
"""

from __future__ import annotations

import argparse
import io
import os
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ecvl_router.features.extractor import ExtractorSettings, FeatureExtractor
from ecvl_router.features.image import MobileNetV2Encoder
from ecvl_router.features.imaging import open_image
from ecvl_router.features.sources import DEFAULT_TEXT_MODEL, PACKAGED_TEXT_MODELS
from ecvl_router.features.statistics import query_statistics
from ecvl_router.features.text import TextEncoder
from ecvl_router.features.weights import resolve_hf_model

QUESTION_WORDS = (
    "In the chart on the left, which of the four coloured bars shows the largest value for the year "
    "2019, and by roughly how many units does it exceed the smallest bar shown in the same group? "
    "Answer with the colour and the difference."
).split()


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return (time.perf_counter() - start) * 1000


def round_robin(cases: dict[str, Callable[[], object]], runs: int, block: int = 10) -> dict[str, np.ndarray]:
    """Milliseconds per call of every case: rounds of ``block`` consecutive calls per case, the first
    call of each block untimed (warm-up after switching), until every case has ``runs`` timings."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    while any(len(values) < runs for values in times.values()):
        for name, function in cases.items():
            function()
            for _ in range(min(block, runs - len(times[name]))):
                times[name].append(timed(function))
    return {name: np.asarray(values) for name, values in times.items()}


def report(title: str, times: dict[str, np.ndarray]) -> None:
    print(f"\n{title}")
    print(f"  {'component':<56} {'median ms':>10} {'p95 ms':>8} {'min ms':>8}")
    for name, values in times.items():
        print(f"  {name:<56} {np.median(values):>10.2f} {np.percentile(values, 95):>8.2f} {values.min():>8.2f}")


def workload(image_px: int, words: int) -> tuple[bytes, str]:
    from matplotlib import cbook

    photo = Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB").resize((image_px, image_px))
    buffer = io.BytesIO()
    photo.save(buffer, "JPEG", quality=90)
    question = " ".join((QUESTION_WORDS * (words // len(QUESTION_WORDS) + 1))[:words])
    return buffer.getvalue(), question


def sentence_transformer():  # the naive text path
    from sentence_transformers import SentenceTransformer

    folder, _ = resolve_hf_model(DEFAULT_TEXT_MODEL, "text encoder", PACKAGED_TEXT_MODELS.get(DEFAULT_TEXT_MODEL))
    return SentenceTransformer(str(folder), device="cpu")


def isolated(function: Callable[[], object], runs: int, warmup: int = 10) -> np.ndarray:
    """Milliseconds per call of ``function`` alone, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        function()
    return np.asarray([timed(function) for _ in range(runs)])


def options_table(args: argparse.Namespace, jpeg: bytes, question: str) -> None:
    """Every speed option of each encoder on its own, in the main thread."""
    st_model = sentence_transformer()
    decoded = open_image(jpeg)
    cases: dict[str, Callable[[], object]] = {
        "text: sentence-transformers encode (naive)": lambda: st_model.encode(question),
    }
    for precision in ("float32", "bfloat16", "int8"):
        encoder = TextEncoder.load(precision=precision)
        cases[f"text: tokenizer + model, {precision}"] = lambda e=encoder: e.encode([question])
    image_options = {
        "image 224: float32 (naive)": MobileNetV2Encoder.load(fold_bn=False, channels_last=False),
        "image 224: + BN folded": MobileNetV2Encoder.load(channels_last=False),
        "image 224: + channels_last": MobileNetV2Encoder.load(),
        "image 224: + bfloat16": MobileNetV2Encoder.load(precision="bfloat16"),
        "image 160: float32, folded, channels_last": MobileNetV2Encoder.load(image_size=160),
        "image 160: + bfloat16": MobileNetV2Encoder.load(image_size=160, precision="bfloat16"),
    }
    for name, encoder in image_options.items():
        cases[name] = lambda e=encoder: e.encode([decoded])
    cases["image: JPEG decode"] = lambda: open_image(jpeg)
    report(f"Each option on its own ({torch.get_num_threads()} threads; image: preprocessing + network)",
           round_robin(cases, args.runs))


def naive_table(args: argparse.Namespace, jpeg: bytes, question: str) -> None:
    """sentence-transformers encode, then MobileNetV2 float32 at 224 px, then statistics."""
    st_model = sentence_transformer()
    network = MobileNetV2Encoder.load(fold_bn=False, channels_last=False)

    def image_branch() -> None:
        with torch.no_grad():
            network.network.embed(network.preprocess([open_image(jpeg)]))

    def total() -> None:
        st_model.encode(question)
        image_branch()
        query_statistics(question, open_image(jpeg))

    cases = {
        "text: sentence-transformers encode": lambda: st_model.encode(question),
        "image: decode + preprocess + network": image_branch,
        "statistics (incl. decode)": lambda: query_statistics(question, open_image(jpeg)),
        "total, one after the other": total,
    }
    report(f"Naive pipeline ({torch.get_num_threads()} threads)", round_robin(cases, args.runs))


def engineered_table(args: argparse.Namespace, jpeg: bytes, question: str, settings: ExtractorSettings) -> None:
    """The components as extract_one runs them (own thread, branch_threads each) and its total."""
    with FeatureExtractor.from_settings(settings) as extractor:
        text, image = extractor.text_encoder, extractor.image_encoder
        decoded = open_image(jpeg)
        branch = ThreadPoolExecutor(1, initializer=torch.set_num_threads, initargs=(extractor.branch_threads,))

        def in_branch_thread(function: Callable[[], object]) -> Callable[[], object]:
            return lambda: branch.submit(function).result()

        cases = {
            "text: tokenizer + model + pooling (own thread)": in_branch_thread(lambda: text.encode([question])),
            "image: decode + preprocess + network (own thread)": in_branch_thread(
                lambda: image.encode([open_image(jpeg)])
            ),
            "statistics (decoded image)": lambda: query_statistics(question, decoded),
            "total: extract_one (branches overlapped)": lambda: extractor.extract_one(question, jpeg),
        }
        times = round_robin(cases, args.runs)
        branch.shutdown()
    report(f"Engineered pipeline: text {text.identity}, image {image.identity}, overlap={settings.overlap}, "
           f"{settings.branch_threads} thread(s) per branch", times)


LATENCY_TABLES = ["options", "naive", "engineered", "configurations"]
CONFIGURATIONS = {
    "one after the other, float32": {"overlap": False},
    "one after the other, text bfloat16": {"overlap": False, "text_precision": "bfloat16"},
    "overlapped 1+1 threads, float32 (default)": {},
    "overlapped 1+1 threads, text bfloat16": {"text_precision": "bfloat16"},
    "overlapped 1+1 threads, text + image bfloat16": {"text_precision": "bfloat16", "image_precision": "bfloat16"},
    "overlapped 2+2 threads, text bfloat16": {"text_precision": "bfloat16", "branch_threads": 2},
    "overlapped 1+1 threads, text bfloat16, image 160 px": {"text_precision": "bfloat16", "image_size": 160},
}


def configurations_table(args: argparse.Namespace, jpeg: bytes, question: str) -> None:
    """extract_one in each configuration, each measured alone (thread pools of different
    configurations disturb each other when alternated)."""
    times = {}
    for name, options in CONFIGURATIONS.items():
        with FeatureExtractor.from_settings(ExtractorSettings(**options)) as extractor:
            times[name] = isolated(lambda e=extractor: e.extract_one(question, jpeg), args.runs)
    report(f"extract_one total per configuration, each alone (224 px float32 image unless stated; "
           f"load average now {os.getloadavg()[0]:.1f})", times)


def latency(args: argparse.Namespace, engineered: ExtractorSettings) -> None:
    jpeg, question = workload(args.image_px, args.words)
    print(f"workload: {args.image_px} px JPEG ({len(jpeg)} bytes), {len(question.split())}-word question, "
          f"{torch.get_num_threads()} torch threads, {args.runs} runs, load average {os.getloadavg()[0]:.1f}")
    if "options" in args.tables:
        options_table(args, jpeg, question)
    if "naive" in args.tables:
        naive_table(args, jpeg, question)
    if "engineered" in args.tables:
        engineered_table(args, jpeg, question, engineered)
    if "configurations" in args.tables:
        configurations_table(args, jpeg, question)


def demo_items(args: argparse.Namespace) -> tuple[list[str], list[Image.Image]]:
    """Questions and images of ``--rsd``, or else --items freshly rendered demo tasks."""
    if args.rsd is not None:
        from ecvl_router.data import load_rsd

        rsd = load_rsd(args.rsd)
        items = rsd.items.head(args.items)
        images = [open_image(rsd.image_path(path)) for path in items["image"] if isinstance(path, str)]
        return items["question"].tolist(), images
    from ecvl_router.data.demo.families import FAMILIES

    rng = np.random.default_rng(1)
    names = list(FAMILIES)
    shares = np.array([FAMILIES[name][1] for name in names])
    tasks = [FAMILIES[names[rng.choice(len(names), p=shares / shares.sum())]][0](rng) for _ in range(args.items)]
    return [task.question for task in tasks], [task.image for task in tasks if task.image is not None]


def agreement(reference: np.ndarray, variant: np.ndarray) -> str:
    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    cosine = (unit(reference) * unit(variant)).sum(axis=1)
    upper = np.triu_indices(len(reference), k=1)
    geometry = np.corrcoef((unit(reference) @ unit(reference).T)[upper], (unit(variant) @ unit(variant).T)[upper])[0, 1]
    return (f"cos mean {cosine.mean():.4f}  p5 {np.percentile(cosine, 5):.4f}  min {cosine.min():.4f}  "
            f"pairwise-sim r {geometry:.4f}")


def fidelity(args: argparse.Namespace) -> None:
    questions, images = demo_items(args)
    source = args.rsd or "rendered demo tasks"
    print(f"\nFidelity to the float32 reference on {len(questions)} questions and {len(images)} images ({source})")
    reference_text = sentence_transformer().encode(questions, batch_size=32)
    for precision in ("float32", "bfloat16", "int8"):
        vectors = TextEncoder.load(precision=precision).encode(questions)
        print(f"  text {precision:<9}: {agreement(reference_text, vectors)}")
    reference_image = MobileNetV2Encoder.load(fold_bn=False, channels_last=False).encode(images)
    for size, precision in ((224, "float32"), (224, "bfloat16"), (192, "float32"), (160, "float32"), (160, "bfloat16")):
        vectors = MobileNetV2Encoder.load(image_size=size, precision=precision).encode(images)
        print(f"  image {size} px {precision:<9} (folded, channels_last): {agreement(reference_image, vectors)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (cores to use)")
    parser.add_argument("--image-px", type=int, default=448)
    parser.add_argument("--words", type=int, default=30)
    parser.add_argument("--text-precision", default="float32", choices=["float32", "bfloat16", "int8"])
    parser.add_argument("--image-precision", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--no-overlap", action="store_true", help="run the two branches one after the other")
    parser.add_argument("--branch-threads", type=int, default=1)
    parser.add_argument("--rsd", type=Path, default=None, help="RSD folder whose items measure fidelity "
                        "(default: freshly rendered demo tasks)")
    parser.add_argument("--items", type=int, default=300, help="items for the fidelity measurement")
    parser.add_argument("--tables", nargs="+", default=LATENCY_TABLES, choices=LATENCY_TABLES,
                        help="which latency tables to print")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-fidelity", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    torch.set_num_threads(args.threads)
    engineered = ExtractorSettings(
        text_precision=args.text_precision,
        image_precision=args.image_precision,
        image_size=args.image_size,
        overlap=not args.no_overlap,
        branch_threads=args.branch_threads,
    )
    if not args.skip_latency:
        latency(args, engineered)
    if not args.skip_fidelity:
        fidelity(args)


if __name__ == "__main__":
    main()
