"""`ecvl-router collect | judge | agreement`: build a Response Score Dataset from your own VLMs."""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from ecvl_router.cli.console import console, err_console, fail, plain, print_json

if TYPE_CHECKING:  # the collection modules import httpx, pandas and the benchmark readers: loaded by the commands
    from ecvl_router.collect import BackendConfig, Tally

DEFAULT_MODELS_FILE = Path("models.yaml")
INTERRUPTED = 130
CALLS_FAILED = 3
"""`collect`'s exit code when some (item, model) pair ended in failure (the rest is saved)."""


def register(app: typer.Typer) -> None:
    """Add the commands of this module to the root ``ecvl-router`` app."""
    app.command("collect")(collect)
    app.command("judge")(judge)
    app.command("agreement")(agreement)


def _split_list(values: list[str] | None) -> list[str]:
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def _backends(models: list[str] | None) -> list[BackendConfig]:
    """Backends from the YAML files among ``--models`` (default ./models.yaml), kept to the names among them."""
    from ecvl_router.collect import load_models_config
    from ecvl_router.config import ConfigError

    files = [Path(value) for value in models or [] if value.lower().endswith((".yaml", ".yml")) or Path(value).is_file()]
    names = _split_list([value for value in models or [] if Path(value) not in files])
    backends = list(itertools.chain.from_iterable(load_models_config(path) for path in files or [DEFAULT_MODELS_FILE]))
    if not names:
        return backends
    known = {backend.name for backend in backends}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ConfigError(f"unknown model(s) {', '.join(unknown)}; configured: {', '.join(sorted(known))}")
    return [backend for backend in backends if backend.name in names]


class _Throughput(ProgressColumn):
    """Calls per second of this run."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.fields.get('rate', 0.0):6.1f}/s", style="progress.data.speed")


@contextmanager
def _backend_progress() -> Iterator:
    """A live display with one bar per backend: done/total, throughput, errors, ETA."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Throughput(),
        TextColumn("[red]{task.fields[errors]} errors"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, refresh_per_second=4) as progress:
        tasks: dict[str, int] = {}

        def update(tally: Tally) -> None:
            if tally.name not in tasks:
                tasks[tally.name] = progress.add_task(plain(tally.name), total=tally.total, completed=tally.resumed, errors=0, rate=0.0)
            progress.update(tasks[tally.name], completed=tally.resumed + tally.done, errors=tally.failed, rate=tally.throughput)

        yield update


def _run(coroutine) -> object:
    """Run a coroutine; Ctrl-C stops it after the finished calls are saved."""
    try:
        return asyncio.run(coroutine)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: finished calls are saved; run the same command again to resume")
        raise typer.Exit(INTERRUPTED) from None


def _print_tallies(tallies: list[Tally], title: str) -> None:
    table = Table(title=title)
    for column in ("model", "total", "done before", "answered now", "failed now", "calls/s", "failures"):
        table.add_column(column, justify="left" if column in ("model", "failures") else "right")
    for tally in tallies:
        failures = ", ".join(f"{kind} {count}" for kind, count in tally.failures.most_common())
        table.add_row(
            plain(tally.name),
            str(tally.total),
            str(tally.resumed),
            str(tally.done - tally.failed),
            str(tally.failed),
            f"{tally.throughput:.1f}",
            failures or "-",
        )
    console.print(table)


def collect(
    benchmarks: list[str] | None = typer.Option(
        None, "--benchmarks", "-b", help="Comma-separated: presets (wildvision, chartqa, gqa, vizwiz, mmvet, mmmu-pro, mmstar), interchange folders, .jsonl/.csv files."
    ),
    models: list[str] | None = typer.Option(
        None, "--models", "-m", help="models.yaml (default ./models.yaml) and/or comma-separated model names to run (default: all)."
    ),
    out: Path = typer.Option(..., "--out", help="Collection folder; re-running the same command resumes."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Use the first N items of each benchmark."),
    shard: str | None = typer.Option(None, "--shard", help="i/n: this machine's share of the items (by a hash of item_id)."),
    no_retry_failed: bool = typer.Option(False, "--no-retry-failed", help="Keep recorded failures instead of calling again."),
    name: str | None = typer.Option(None, "--name", help="Dataset name (default: the folder name)."),
    hf_dataset: list[str] | None = typer.Option(None, "--hf-dataset", help="A Hugging Face dataset id or local folder (repeatable)."),
    hf_config: str | None = typer.Option(None, "--hf-config", help="Config (subset) of --hf-dataset."),
    split: str | None = typer.Option(None, "--split", help="Split of --hf-dataset (default test); overrides a preset's split."),
    question_col: str | None = typer.Option(None, "--question-col", help="Question column (default 'question')."),
    image_col: str | None = typer.Option(None, "--image-col", help="Image column (default 'image' when present)."),
    answer_col: str | None = typer.Option(None, "--answer-col", "--reference-col", help="Reference-answer column (default 'reference' or 'answer')."),
    id_col: str | None = typer.Option(None, "--id-col", help="Item id column (default 'item_id' or 'id'; else the row number)."),
    source_col: str | None = typer.Option(None, "--source-col", help="Column naming each row's source."),
    choices_col: str | None = typer.Option(None, "--choices-col", help="Column of answer options, appended to the question as A. … B. …"),
    source: str | None = typer.Option(None, "--source", help="Source name for --hf-dataset items (default: the dataset name)."),
) -> None:
    """Ask every configured VLM about every benchmark item; results are saved as they arrive."""
    from ecvl_router.collect import (
        BenchmarkError,
        CollectionDir,
        ColumnMap,
        HubSpec,
        Shard,
        StoreLockedError,
        collect_responses,
        load_benchmark,
        load_hub_items,
        resolve_api_key,
        write_collect_manifest,
    )
    from ecvl_router.config import ConfigError
    from ecvl_router.data import RSDValidationError

    specs = _split_list(benchmarks)
    if not specs and not hf_dataset:
        fail("nothing to collect: give --benchmarks and/or --hf-dataset")
    columns = ColumnMap(question=question_col, image=image_col, reference=answer_col, id=id_col, source=source_col, choices=choices_col)
    try:
        chosen_shard = Shard.parse(shard) if shard else None
        backends = _backends(models)
        keys = {backend.name: resolve_api_key(backend) for backend in backends}
        loaders = [load_benchmark(spec, columns=columns, split=split, limit=limit) for spec in specs]
        for dataset in hf_dataset or []:
            spec = HubSpec(dataset=dataset, config=hf_config, split=split or "test", source=source or Path(dataset).name, columns=columns)
            loaders.append(load_hub_items(spec, limit=limit))
        workspace = CollectionDir(out)
        with err_console.status("reading benchmarks"):
            items = workspace.add_items(itertools.chain.from_iterable(loaders), dataset_name=name or Path(out).resolve().name)
    except (ConfigError, BenchmarkError, RSDValidationError, ValueError) as exc:
        fail(str(exc))
    logging.getLogger("httpx").setLevel(logging.WARNING)
    console.print(f"{len(items)} items, {len(backends)} model(s) → {plain(out)}" + (f" (shard {chosen_shard.index}/{chosen_shard.count})" if chosen_shard else ""))
    tallies: dict[str, Tally] = {}
    settings = {"benchmarks": specs + list(hf_dataset or []), "limit": limit, "shard": shard, "retry_failed": not no_retry_failed, "items": len(items)}
    try:
        with _backend_progress() as show:

            def on_progress(tally: Tally) -> None:
                tallies[tally.name] = tally
                show(tally)

            _run(collect_responses(workspace, items, backends, keys, shard=chosen_shard, retry_failed=not no_retry_failed, on_progress=on_progress))
    except StoreLockedError as exc:
        fail(str(exc))
    finally:
        if tallies:  # the run started: record it, finished or interrupted
            write_collect_manifest(workspace, backends, settings, list(tallies.values()))
    _print_tallies(list(tallies.values()), "collection")
    failed = {tally.name: tally.ended_in_failure for tally in tallies.values() if tally.ended_in_failure}
    if failed:
        per_model = ", ".join(f"{name} {count}" for name, count in failed.items())
        console.print(
            f"[red]failed[/]: {sum(failed.values())} (item, model) pair(s) ended in failure ({plain(per_model)}); "
            "run the same command again to retry them, or judge what was answered",
            highlight=False,
        )
        raise typer.Exit(CALLS_FAILED)
    console.print(f"next: [bold]ecvl-router judge --data {plain(out)} --judge judge.yaml[/]")


def judge(
    data: Path = typer.Option(..., "--data", help="Collection folder written by `ecvl-router collect`."),
    judge_file: Path = typer.Option(..., "--judge", help="judge.yaml: the judge's endpoint, model and scale."),
    allow_self_judging: bool = typer.Option(False, "--allow-self-judging", help="Let the judge score its own answers."),
    no_retry_failed: bool = typer.Option(False, "--no-retry-failed", help="Keep failed or unreadable judgements."),
) -> None:
    """Score every collected answer with an LLM judge and write responses.jsonl (the Response Score Dataset)."""
    from ecvl_router.collect import (
        BenchmarkError,
        CollectionDir,
        SelfJudgingError,
        StoreLockedError,
        judge_responses,
        load_judge_config,
        resolve_api_key,
        write_judged_dataset,
    )
    from ecvl_router.config import ConfigError
    from ecvl_router.data import check_dataset

    workspace = CollectionDir(data)
    try:
        config = load_judge_config(judge_file)
        key = resolve_api_key(config)
        if not workspace.items_path.is_file():
            fail(f"{data}: no items.jsonl; run `ecvl-router collect --out {data}` first")
        logging.getLogger("httpx").setLevel(logging.WARNING)
        with _backend_progress() as show:
            tally = _run(judge_responses(workspace, config, key, allow_self_judging=allow_self_judging, retry_failed=not no_retry_failed, on_progress=show))
        report = write_judged_dataset(workspace, config)
    except (ConfigError, SelfJudgingError, BenchmarkError, StoreLockedError) as exc:
        fail(str(exc))
    _print_tallies([tally], "judging")
    console.print(f"[green]wrote[/] {report.responses} judged responses to {plain(data)}/responses.jsonl")
    if report.left_out:
        reasons = [f"collection failed ({kind}): {count}" for kind, count in report.collect_failures.most_common()]
        reasons += [f"judge output {kind.replace('_', ' ')}: {count}" for kind, count in report.judge_failures.most_common()]
        reasons += [f"not judged yet: {report.not_judged}"] if report.not_judged else []
        console.print(f"[yellow]left out {report.left_out}[/] (item, model) pair(s): " + "; ".join(reasons))
    if report.estimated_tokens:
        console.print(f"{report.estimated_tokens} response(s) carry token counts estimated from words (the server reported no usage)")
    rsd, problems = check_dataset(data, decode_images=False)
    if problems:
        for problem in problems:
            console.print(str(problem), highlight=False, markup=False)
        fail(f"{data}: the written dataset has {len(problems)} problem(s)")
    console.print(f"[green]ok[/] {plain(data)} is a valid Response Score Dataset: {len(rsd.items)} items, models: {plain(', '.join(rsd.models))}")


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}g}"


def agreement(
    judged: Path = typer.Option(..., "--judge", help="Judged dataset folder (its responses.jsonl scores)."),
    human: Path = typer.Option(..., "--human", help="CSV of human ratings: item_id, model, rater, score."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default: DIR/agreement)."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Judge-human agreement (Appendix A.3): Pearson, Spearman, within 1/2 points, inter-rater r, bias t-test, per rater."""
    from ecvl_router.collect.agreement import AgreementError, agreement_rows, compute_agreement, read_human_ratings, write_agreement
    from ecvl_router.data import RSDValidationError, load_rsd

    try:
        rsd = load_rsd(judged)
        report, matched = compute_agreement(rsd.responses, read_human_ratings(human))
    except (RSDValidationError, FileNotFoundError, AgreementError) as exc:
        fail(str(exc))
    paths = write_agreement(report, matched, out or Path(judged) / "agreement", score_min=rsd.info.score_min, score_max=rsd.info.score_max)
    if as_json:
        print_json(report.as_dict())
        return
    table = Table(title=f"judge vs human ({report.n_responses} responses, {report.n_raters} raters, {report.n_ratings} ratings)")
    for column in ("statistic", "value", "p-value", "n"):
        table.add_column(column, justify="left" if column == "statistic" else "right")
    for name, value, p_value, n in agreement_rows(report):
        table.add_row(plain(name), _fmt(value), _fmt(p_value, 3) if p_value is not None else "", str(n))
    console.print(table)
    if report.unmatched_ratings:
        console.print(f"[yellow]{report.unmatched_ratings} rating(s) left out[/]: their (item_id, model) has no judge score in {plain(judged)}")
    console.print("wrote " + ", ".join(str(path) for path in paths.values()))
