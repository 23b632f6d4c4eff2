"""`ecvl-router export-encoders`: the text and image encoders in ONNX Runtime, verified against torch on export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import typer

from ecvl_router.cli.console import console, fail, plain
from ecvl_router.cli.data import load_or_fail
from ecvl_router.cli.options import EncodersOption, extractor_settings, load_extractor


def export_encoders(
    out: Path = typer.Option(..., "--out", help="Folder to write: text.onnx, image.onnx, tokenizer, export.json, encoders.yaml."),
    data: Path = typer.Option(..., "--data", help="Dataset whose questions and images the export is verified on."),
    bundle: Path | None = typer.Option(None, "--bundle", help="Trained run: export its encoders and compare its decisions on its test split."),
    encoders: Path | None = EncodersOption,
    int8: bool = typer.Option(False, "--int8", help="Quantise the matrix multiplications' weights to int8 (dynamic quantisation)."),
    limit: int = typer.Option(300, "--limit", min=1, help="Verify on at most this many queries (with --bundle: of its test split)."),
    min_cosine: float = typer.Option(0.99, "--min-cosine", min=0, max=1, help="Lowest cosine similarity to torch allowed for any query."),
    min_agreement: float = typer.Option(0.99, "--min-agreement", min=0, max=1, help="Lowest share of identical decisions allowed, per scenario."),
    force: bool = typer.Option(False, "--force", help="Replace an existing folder."),
) -> None:
    """Export the encoders to ONNX Runtime (optionally int8) and verify embeddings and decisions against torch."""
    from ecvl_router.learning.bundle import BundleError, load_bundle
    from ecvl_router.features.extractor import ExtractorSettings
    from ecvl_router.features.onnx_export import embedding_agreement, export_encoders as write_export, exported_extractor, mark_verified
    from ecvl_router.learning.runs import SPLIT_FILE

    if out.exists() and not force:
        fail(f"{out} exists; use --force to replace it")
    if bundle is not None and encoders is not None:
        fail("give --bundle (its encoders are exported) or --encoders, not both")
    trained = None
    if bundle is not None:
        try:
            trained = load_bundle(bundle)
            settings = ExtractorSettings(**trained.manifest["settings"]["extractor"])
            wanted = json.loads((bundle / SPLIT_FILE).read_text(encoding="utf-8"))["test"]
        except (BundleError, OSError, KeyError, TypeError, ValueError) as exc:
            fail(f"{bundle}: cannot read the trained run: {exc}")
    else:
        settings, wanted = extractor_settings(encoders), None
    if settings.onnx is not None:
        fail("these encoders are an ONNX export already; export from torch encoders")
    rsd = load_or_fail(data)
    items = rsd.items.set_index("item_id", drop=False)
    ids = [item_id for item_id in (wanted if wanted is not None else items.index) if item_id in items.index][:limit]
    if not ids:
        fail(f"{data}: none of the queries to verify on are in the dataset")
    questions = items.loc[ids, "question"].tolist()
    images = [rsd.image_path(image) for image in items.loc[ids, "image"]]
    torch_extractor = load_extractor(settings)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    record = write_export(torch_extractor, partial, int8=int8, settings=settings.model_dump(mode="json"))
    onnx_extractor = exported_extractor(partial, record, settings.branch_threads)
    reference, candidate = torch_extractor.extract(questions, images, ids), onnx_extractor.extract(questions, images, ids)
    verification: dict[str, object] = embedding_agreement(reference, candidate)
    passed = min(verification["text_cosine_min"], verification["image_cosine_min"]) >= min_cosine  # type: ignore[type-var]
    if trained is not None:
        agreement = {name: float((trained.decide(reference, name)[0] == trained.decide(candidate, name)[0]).mean()) for name in trained.choices}
        verification["decision_agreement"] = agreement
        verification["bundle"] = str(bundle)
        passed = passed and min(agreement.values()) >= min_agreement
    verification.update(passed=passed, min_cosine=min_cosine, min_agreement=min_agreement)
    _report(verification)
    if not passed:
        shutil.rmtree(partial, ignore_errors=True)
        fail(f"the ONNX encoders differ from torch beyond --min-cosine {min_cosine:g} / --min-agreement {min_agreement:g}; nothing written")
    mark_verified(partial, verification)
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    console.print(f"[green]exported[/] {plain(record['text']['identity'])} and {plain(record['image']['identity'])} → {plain(out)} "
                  f"(use {plain(out / 'encoders.yaml')})", highlight=False)


def _report(verification: dict[str, object]) -> None:
    console.print(
        f"verified on {verification['queries']} queries ({verification['images']} with an image): cosine to torch "
        f"text min {verification['text_cosine_min']:.5f} mean {verification['text_cosine_mean']:.5f}, "
        f"image min {verification['image_cosine_min']:.5f} mean {verification['image_cosine_mean']:.5f}",
        highlight=False,
    )
    for name, share in (verification.get("decision_agreement") or {}).items():  # type: ignore[union-attr]
        console.print(f"  identical decisions, {plain(name)}: {100 * share:.2f} %", highlight=False)
