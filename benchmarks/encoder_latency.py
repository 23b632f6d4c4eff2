"""Latency and fidelity of the feature stage for one live routing decision on CPU.

Latency: median and p95 over --runs repetitions at batch 1 (a --image-px square JPEG as a gateway
receives it, and a --words-word question) of every component, for the naive pipeline
(sentence-transformers ``encode`` + MobileNetV2 float32 at 224 px, one after the other) and the
engineered one (``FeatureExtractor.extract_one``), each speed option on its own, and extract_one
in several configurations. Variants are timed round-robin, so load from other processes affects
them alike; on cores shared with other work, the minimum approximates the idle-machine latency.

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


def round_robin(cases: dict[str, Callable[[], object]], runs: int, warmup: int = 5) -> dict[str, np.ndarray]:
    """Milliseconds per call of every case, interleaved run by run."""
    for _ in range(warmup):
        for function in cases.values():
            function()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, function in cases.items():
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


def latency(args: argparse.Namespace, engineered: ExtractorSettings) -> None:
    jpeg, question = workload(args.image_px, args.words)
    print(f"workload: {args.image_px} px JPEG ({len(jpeg)} bytes), {len(question.split())}-word question, "
          f"{torch.get_num_threads()} torch threads, {args.runs} runs, load average {os.getloadavg()[0]:.1f}")
    st_model = sentence_transformer()
    naive_image = MobileNetV2Encoder.load(fold_bn=False, channels_last=False, image_size=224)

    def naive_image_branch() -> None:
        image = open_image(jpeg)
        with torch.no_grad():
            naive_image.network.embed(naive_image.preprocess([image]))

    def naive_total() -> None:
        st_model.encode(question)
        naive_image_branch()
        query_statistics(question, open_image(jpeg))

    extractor = FeatureExtractor.from_settings(engineered)
    text, image = extractor.text_encoder, extractor.image_encoder
    decoded = open_image(jpeg)
    options = {
        "text: sentence-transformers encode (naive)": lambda: st_model.encode(question),
        "text: tokenizer + model, float32": TextEncoder.load(precision="float32").encode,
        "text: tokenizer + model, bfloat16": TextEncoder.load(precision="bfloat16").encode,
        "text: tokenizer + model, int8 dynamic": TextEncoder.load(precision="int8").encode,
    }
    cases = {name: (lambda f=f: f([question])) if "naive" not in name else f for name, f in options.items()}
    image_options = {
        "image 224: float32, no_grad (naive)": naive_image,
        "image 224: + inference_mode, BN folded": MobileNetV2Encoder.load(channels_last=False),
        "image 224: + channels_last": MobileNetV2Encoder.load(),
        "image 224: + bfloat16": MobileNetV2Encoder.load(precision="bfloat16"),
        "image 160: float32, folded, channels_last": MobileNetV2Encoder.load(image_size=160),
        "image 160: + bfloat16": MobileNetV2Encoder.load(image_size=160, precision="bfloat16"),
    }
    for name, encoder in image_options.items():
        cases[name] = lambda e=encoder: e.encode([decoded])
    cases["image: JPEG decode"] = lambda: open_image(jpeg)
    report("Each option on its own (network calls incl. preprocessing; 2 threads)", round_robin(cases, args.runs))

    branch = ThreadPoolExecutor(1, initializer=torch.set_num_threads, initargs=(extractor.branch_threads,))

    def in_branch_thread(function: Callable[[], object]) -> Callable[[], object]:
        """Run as extract_one runs it: in a worker thread with the branch's torch thread count."""
        return lambda: branch.submit(function).result()

    pipelines = {
        "naive: text (sentence-transformers encode)": lambda: st_model.encode(question),
        "naive: image (decode + 224 px float32 network)": naive_image_branch,
        "naive: statistics (incl. decode)": lambda: query_statistics(question, open_image(jpeg)),
        "naive: total, sequential": naive_total,
        "engineered: text encoder (own thread)": in_branch_thread(lambda: text.encode([question])),
        "engineered: image decode + encoder (own thread)": in_branch_thread(lambda: image.encode([open_image(jpeg)])),
        "engineered: statistics (decoded image)": lambda: query_statistics(question, decoded),
        "engineered: total, extract_one": lambda: extractor.extract_one(question, jpeg),
    }
    report(f"Pipelines (engineered: text {text.identity}, image {image.identity}, overlap={extractor.overlap}, "
           f"{extractor.branch_threads} thread(s) per branch)", round_robin(pipelines, args.runs))
    extractor.close()
    branch.shutdown()

    variants = {
        "sequential, float32": {"overlap": False},
        "sequential, text bfloat16": {"overlap": False, "text_precision": "bfloat16"},
        "overlapped 1+1 threads, float32": {},
        "overlapped 1+1 threads, text bfloat16": {"text_precision": "bfloat16"},
        "overlapped 1+1 threads, text + image bfloat16": {"text_precision": "bfloat16", "image_precision": "bfloat16"},
        "overlapped 2+2 threads, text bfloat16": {"text_precision": "bfloat16", "branch_threads": 2},
        "overlapped 1+1 threads, text bfloat16, image 160 px": {"text_precision": "bfloat16", "image_size": 160},
    }
    extractors = {name: FeatureExtractor.from_settings(ExtractorSettings(**kw)) for name, kw in variants.items()}
    cases = {name: (lambda e=e: e.extract_one(question, jpeg)) for name, e in extractors.items()}
    report("extract_one, total per configuration (224 px float32 image unless stated)", round_robin(cases, args.runs))
    for extractor in extractors.values():
        extractor.close()


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
    parser.add_argument("--text-precision", default="bfloat16", choices=["float32", "bfloat16", "int8"])
    parser.add_argument("--image-precision", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--no-overlap", action="store_true", help="run the two branches one after the other")
    parser.add_argument("--branch-threads", type=int, default=1)
    parser.add_argument("--rsd", type=Path, default=None, help="RSD folder whose items measure fidelity "
                        "(default: freshly rendered demo tasks)")
    parser.add_argument("--items", type=int, default=300, help="items for the fidelity measurement")
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
