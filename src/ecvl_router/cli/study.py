"""`ecvl-router study-report`: the online study's database as tables, a figure and a Markdown summary."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ecvl_router.cli.console import console, fail


def register(app: typer.Typer) -> None:
    """Add the commands of this module to the root ``ecvl-router`` app."""
    app.command("study-report")(study_report)


def study_report(
    database: Path = typer.Argument(..., help="The study's SQLite database (the gateway config's study.database)."),
    out: Path = typer.Option(..., "--out", help="Folder for the CSV tables, the PNG figure and the Markdown summary."),
    min_ratings: int = typer.Option(10, "--min-ratings", min=1, help="Ratings a policy needs in a scenario before it is compared."),
) -> None:
    """APSP and latency per policy and scenario with 95 % confidence intervals, per participant too (Figure 10)."""
    from ecvl_router.study.report import StudyReportError, write_study_report

    try:
        report = write_study_report(database, out, min_ratings=min_ratings)
    except StudyReportError as exc:
        fail(str(exc))
    table = Table(title=f"Online study — {database}")
    for column in ("scenario", "policy", "ratings", "APSP [95 % CI]", "latency s [95 % CI]", "edge share"):
        table.add_column(column, justify="right" if column not in ("scenario", "policy") else "left")
    for row in report.summary.itertuples(index=False):
        table.add_row(
            f"{row.scenario} (MES {row.mes:g})", row.policy, str(row.ratings),
            f"{row.apsp:.3f} [{row.apsp_low:.3f}, {row.apsp_high:.3f}]",
            f"{row.latency_s:.2f} [{row.latency_low:.2f}, {row.latency_high:.2f}]", f"{row.edge_share:.2f}",
        )
    console.print(table)
    if not report.too_few.empty:
        console.print(
            f"[yellow]too few ratings for a conclusion[/] (fewer than {min_ratings}) for "
            + ", ".join(f"{r.policy} in {r.scenario} ({r.ratings})" for r in report.too_few.itertuples(index=False))
        )
    console.print(f"[green]report[/] {report.files['markdown']} (figure {report.files['figure']}, tables in {out})")
