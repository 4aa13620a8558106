"""`python -m training ...`: build a bundle, evaluate models."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from training.config import BuildConfig

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True)

DataOption = Annotated[
    str,
    typer.Option(
        "--data",
        help="Dataset: a directory as unpacked, a single file (Netflix sample), a .zip as downloaded, "
        "or a known name (ml-latest-small, ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, ml-32m, ml-latest).",
    ),
]


@app.callback()
def _root() -> None:
    """Rebuild and evaluate cinerec's artifact bundle."""


@app.command()
def build(
    data: DataOption,
    out: Annotated[Path, typer.Option(help="Bundle root; the new bundle becomes OUT/current.")] = Path(
        "artifacts"
    ),
    config: Annotated[
        Path | None, typer.Option(help="JSON file with a BuildConfig (hyper-parameters).")
    ] = None,
    tune: Annotated[str, typer.Option(help="Tune on a validation split: auto, on or off.")] = "auto",
    device: Annotated[
        str, typer.Option(help="ALS on 'cpu', 'gpu' (implicit's CUDA ALS; fails if unusable) or 'auto'.")
    ] = "auto",
    feedback: Annotated[
        str | None,
        typer.Option(
            help="The service's DATABASE_URL: merge its stored ratings (they win) and events into the data."
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="'local' (this machine: implicit, numpy) or 'spark' (Spark MLlib; DATA may then be any "
            "URI Spark reads, Parquet or CSV)."
        ),
    ] = "local",
    master: Annotated[
        str | None, typer.Option(help="Spark master for --engine spark (default local[*]).")
    ] = None,
) -> None:
    """Build a bundle from a dataset and point OUT/current at it."""
    from training.build import DeviceError, resolve_device
    from training.build import build as run_build
    from training.datasets import DatasetError, load_dataset

    settings = BuildConfig.model_validate_json(config.read_text()) if config else BuildConfig()
    settings.tune.enabled = tune  # type: ignore[assignment]
    settings.device = device  # type: ignore[assignment]
    if master:
        settings.spark.master = master
    settings = BuildConfig.model_validate(settings.model_dump())
    if engine == "spark":
        if feedback:
            console.print("[red]error:[/red] --feedback is not supported with --engine spark yet")
            raise typer.Exit(2)
        _build_on_spark(data, out, settings)
        return
    if engine != "local":
        console.print(f"[red]error:[/red] unknown engine {engine!r}; choose local or spark")
        raise typer.Exit(2)
    try:
        settings.device = resolve_device(settings.device)
    except DeviceError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"ALS device: {settings.device}")
    started = time.perf_counter()
    try:
        with console.status(f"loading {data}"):
            dataset = load_dataset(data)
    except DatasetError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    feedback_counts = None
    if feedback:
        from sqlalchemy.exc import SQLAlchemyError

        from training.feedback import merge_feedback, read_feedback

        try:
            dataset, feedback_counts = merge_feedback(dataset, read_feedback(feedback))
        except (SQLAlchemyError, OSError) as exc:
            console.print(f"[red]error:[/red] cannot read feedback from {feedback}: {exc}")
            raise typer.Exit(2) from exc
        console.print(f"feedback: {feedback_counts}")
    counts = dataset.counts
    console.print(
        f"loaded {dataset.name} ({dataset.layout}): {counts['ratings']:,} ratings, "
        f"{counts['users']:,} users, {counts['movies']:,} movies "
        f"in {time.perf_counter() - started:.1f}s"
    )
    directory = run_build(dataset, out, settings, step=lambda m: console.print(m), feedback=feedback_counts)
    manifest = json.loads((directory / "manifest.json").read_text())
    validation = manifest["metrics"]["validation"]
    if validation.get("tuned"):
        figures = validation["ndcg@10"]
        console.print(
            f"validation nDCG@10: served {figures['served']:.4f}, ALS {figures['als']:.4f}, "
            f"popularity {figures['popularity']:.4f}"
        )
    console.print(
        f"bundle {directory} ({time.perf_counter() - started:.1f}s); {out}/current -> {directory.name}"
    )


def _build_on_spark(data: str, out: Path, settings: BuildConfig) -> None:
    try:
        from training.spark import build_spark, session
    except ImportError as exc:
        console.print(f"[red]error:[/red] --engine spark needs pyspark (make spark): {exc}")
        raise typer.Exit(2) from exc
    from training.datasets import DatasetError

    started = time.perf_counter()
    spark = session(settings.spark.master, settings.spark.driver_memory, settings.spark.checkpoint_dir)
    try:
        directory = build_spark(spark, data, out, settings, step=lambda m: console.print(m))
    except DatasetError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    finally:
        spark.stop()
    console.print(
        f"bundle {directory} ({time.perf_counter() - started:.1f}s); {out}/current -> {directory.name}"
    )


@app.command()
def evaluate(
    data: DataOption,
    protocol: Annotated[
        str,
        typer.Option(
            help="holdout (ranking), kfold (5-fold RMSE), time (Netflix-style by year) or probe "
            "(the Netflix Prize's probe set, with its original files)."
        ),
    ] = "holdout",
    json_path: Annotated[
        Path, typer.Option("--json", help="Report file; PNG plots are written beside it.")
    ] = Path("reports/evaluation.json"),
    config: Annotated[Path | None, typer.Option(help="JSON file with a BuildConfig.")] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the random split (holdout, kfold); the reference figures use 0.")
    ] = 0,
) -> None:
    """Evaluate the models with a protocol; print a table, write JSON and PNG plots."""
    from rich.table import Table

    from training.datasets import DatasetError, load_dataset
    from training.evaluate import PROTOCOLS, run, write_plots

    if protocol not in PROTOCOLS:
        console.print(f"[red]error:[/red] unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
        raise typer.Exit(2)
    settings = BuildConfig.model_validate_json(config.read_text()) if config else BuildConfig()
    try:
        dataset = load_dataset(data)
    except DatasetError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    try:
        report = run(dataset, protocol, settings, lambda m: console.print(m), seed)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2))
    plots = write_plots(report, json_path.with_suffix(""))

    table = Table(title=f"{dataset.name}: {report['description']}")
    table.add_column("model")
    if protocol == "holdout":
        for column in ("nDCG@10", "95% CI", "P@10", "R@10", "MAP@10", "coverage"):
            table.add_column(column, justify="right")
        for name, model in report["models"].items():
            m = model["at_10"]
            low, high = model["ndcg_ci95"]
            table.add_row(
                name,
                f"{m['ndcg']:.4f}",
                f"{low:.4f}-{high:.4f}",
                *(f"{m[key]:.4f}" for key in ("precision", "recall", "map", "coverage")),
            )
    else:
        table.add_column("RMSE", justify="right")
        table.add_column("95% CI", justify="right")
        table.add_column("MAE", justify="right")
        by_user = protocol == "time"  # the test year's ratings by users seen before it, and new ones
        if by_user:
            table.add_column("known users", justify="right")
            table.add_column("new users", justify="right")
        for name, model in report["models"].items():
            ci = model.get("rmse_ci95")
            table.add_row(
                name,
                f"{model['rmse']:.4f}",
                "" if ci is None else f"{ci[0]:.4f}-{ci[1]:.4f}",
                _figure(model.get("mae")),
                *((_figure(model["rmse_known_users"]), _figure(model["rmse_new_users"])) if by_user else ()),
            )
    Console().print(table)
    console.print(f"report {json_path}; plots {', '.join(str(p) for p in plots)} ({report['seconds']}s)")


def _figure(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    app()
