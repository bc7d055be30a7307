"""The `trackflow` command."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipelines import broker as broker_mod
from pipelines.config import IngestSettings, KafkaSettings, SettingsError, load_dotenv
from pipelines.warehouse import Warehouse, WarehouseError, open_warehouse

app = typer.Typer(
    help="trackflow: event tracking from Kafka to DuckDB, dbt and Dagster.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
broker_app = typer.Typer(
    help="The embedded Kafka-compatible broker (Tansu, memory storage).", no_args_is_help=True
)
app.add_typer(broker_app, name="broker")
plan_app = typer.Typer(
    help="The tracking plan (TRACKING_PLAN): a JSON Schema per event.", no_args_is_help=True
)
app.add_typer(plan_app, name="plan")

console = Console(stderr=True)
out = Console(soft_wrap=True)


@app.callback()
def _read_dotenv() -> None:
    # as the Dagster CLI does: `.env` of the working directory, variables already set win
    load_dotenv()


def fail(reason: str, code: int = 1) -> typer.Exit:
    """Print a one-line reason and return the exit to raise."""
    console.print(f"[red]error:[/red] {reason}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _warehouse() -> Warehouse:
    try:
        return open_warehouse()
    except (SettingsError, WarehouseError) as exc:
        raise fail(str(exc)) from None


def _kafka() -> KafkaSettings:
    try:
        return KafkaSettings.from_env()
    except SettingsError as exc:
        raise fail(str(exc)) from None


def _default(field: str) -> Any:
    return IngestSettings.model_fields[field].default


StateDir = Annotated[Path, typer.Option(help="where pid and log are kept")]


@broker_app.command("start")
def broker_start(
    port: Annotated[int, typer.Option(help="port to listen on (127.0.0.1)")] = 9092,
    state_dir: StateDir = broker_mod.DEFAULT_STATE_DIR,
) -> None:
    """Start the broker in the background and wait until it answers the Kafka protocol."""
    try:
        st = broker_mod.start(port=port, state_dir=state_dir)
    except broker_mod.BrokerError as exc:
        raise fail(str(exc)) from None
    out.print(f"broker running on {st.bootstrap} (pid {st.pid}, log {st.log_path})")


@broker_app.command("stop")
def broker_stop(state_dir: StateDir = broker_mod.DEFAULT_STATE_DIR) -> None:
    """Stop the background broker (its in-memory topics are lost)."""
    if broker_mod.stop(state_dir):
        out.print("broker stopped")
    else:
        out.print("no broker was running")


@broker_app.command("status")
def broker_status(
    port: Annotated[int | None, typer.Option(help="also check this port answers")] = None,
    state_dir: StateDir = broker_mod.DEFAULT_STATE_DIR,
) -> None:
    """Say whether the broker runs; exit 1 if it does not."""
    st = broker_mod.status(state_dir)
    if not st.running:
        raise fail("broker is not running; start it with 'trackflow broker start'")
    check_port = port or st.port
    try:
        broker_mod.wait_ready(f"127.0.0.1:{check_port}", timeout=5)
    except broker_mod.BrokerError as exc:
        raise fail(str(exc)) from None
    out.print(f"broker running on 127.0.0.1:{check_port} (pid {st.pid}, log {st.log_path})")


@app.command()
def produce(
    events: Annotated[
        int, typer.Option(help="valid events to generate (exactly this many valid messageIds)")
    ] = 10_000,
    users: Annotated[int, typer.Option(help="distinct visitors")] = 500,
    days: Annotated[int, typer.Option(help="days of traffic")] = 1,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same traffic)")] = 42,
    start: Annotated[
        str | None, typer.Option(help="first day, YYYY-MM-DD (default: days ago)")
    ] = None,
    faults: Annotated[
        str, typer.Option(help="comma separated: duplicates,late,skew,malformed (or 'all')")
    ] = "",
    truth: Annotated[Path | None, typer.Option(help="write the ground truth JSON here")] = None,
    partitions: Annotated[int, typer.Option(help="partitions if the topic is created")] = 4,
    compression: Annotated[str | None, typer.Option(help="gzip | snappy | lz4 | zstd")] = None,
    journeys: Annotated[
        bool,
        typer.Option(
            help="add 1 visitor per 300 events following products in parallel "
            "(traffic for funnel exclusions, optional steps, hold_constant)"
        ),
    ] = False,
    identity_scenarios: Annotated[
        bool,
        typer.Option(help="include alias chains, multi-device people and shared devices"),
    ] = False,
) -> None:
    """Produce a synthetic clickstream to TRACKING_TOPIC."""
    from pipelines.generator import FAULTS, generate
    from pipelines.producer import ProduceError
    from pipelines.producer import produce as send

    chosen = set(FAULTS) if faults == "all" else {f.strip() for f in faults.split(",") if f.strip()}
    try:
        first_day = date.fromisoformat(start) if start else None
    except ValueError:
        raise fail(f"--start {start!r} is not a date (YYYY-MM-DD)") from None
    settings = _kafka()
    try:
        with console.status("generating traffic..."):
            traffic = generate(
                events=events,
                users=users,
                days=days,
                seed=seed,
                start=first_day,
                faults=chosen,
                identity_scenarios=identity_scenarios,
                journeys=journeys,
            )
        with _progress() as progress:
            task = progress.add_task("producing", total=len(traffic.messages))
            send(
                traffic.messages,
                settings,
                partitions=partitions,
                compression=compression,
                on_progress=lambda n: progress.update(task, completed=n),
            )
    except (ValueError, ProduceError) as exc:
        raise fail(str(exc)) from None
    if truth:
        truth.parent.mkdir(parents=True, exist_ok=True)
        truth.write_text(json.dumps(traffic.truth, indent=2))
    t = traffic.truth
    out.print(
        f"produced {t['messages']} messages to {settings.topics[0]}: {t['valid_message_ids']} "
        f"events, {t['duplicate_deliveries']} duplicate deliveries, {t['malformed']} malformed"
        + (f"; truth in {truth}" if truth else "")
    )


@app.command()
def ingest(
    max_messages: Annotated[
        int | None,
        typer.Option(
            help="stop after this many messages "
            f"[default: TRACKFLOW_INGEST_MAX_MESSAGES or {_default('max_messages')}]",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="messages per Arrow micro-batch "
            f"[default: TRACKFLOW_INGEST_BATCH_SIZE or {_default('batch_size')}]",
            show_default=False,
        ),
    ] = None,
    max_seconds: Annotated[
        float | None,
        typer.Option(
            help="stop draining after this long "
            f"[default: TRACKFLOW_INGEST_MAX_SECONDS or {_default('max_seconds')}]",
            show_default=False,
        ),
    ] = None,
    messages_per_load: Annotated[
        int | None,
        typer.Option(
            help="load a long drain in parts of this many messages (bounds memory) "
            f"[default: TRACKFLOW_INGEST_MESSAGES_PER_LOAD or {_default('messages_per_load')}]",
            show_default=False,
        ),
    ] = None,
    start_from: Annotated[
        str, typer.Option(help="where a new pipeline starts: earliest | latest | ISO time")
    ] = "earliest",
    resume_from: Annotated[
        str | None,
        typer.Option(help="accept a recorded offset gap and resume: earliest | latest | ISO time"),
    ] = None,
    shard: Annotated[
        str,
        typer.Option(
            help="I/N: drain only the partitions p with p % N == I (run N such workers, on any "
            "hosts, against a ducklake warehouse)"
        ),
    ] = "0/1",
    as_json: Annotated[
        bool, typer.Option("--json", help="print the result as one JSON object (for tools)")
    ] = False,
) -> None:
    """Drain the topic(s) once into the warehouse: raw events and dead letters.

    Exits 1 with a one-line reason on failure, 3 when the broker no longer holds offsets that
    were never loaded (a gap: see --resume-from).
    """
    from pipelines.ingest import ingest as run
    from pipelines.kafka_source.helpers import DrainStats, IngestError, OffsetGapError
    from pipelines.offsets import Shard

    try:
        owned = Shard.parse(shard)
    except ValueError as exc:
        raise fail(str(exc)) from None
    settings = _kafka()
    warehouse = _warehouse()
    given = {
        "max_messages": max_messages,
        "batch_size": batch_size,
        "max_seconds": max_seconds,
        "messages_per_load": messages_per_load,
    }
    try:
        limits = IngestSettings.from_env().model_copy(
            update={k: v for k, v in given.items() if v is not None}
        )
    except SettingsError as exc:
        raise fail(str(exc)) from None
    try:
        with _progress() as progress:
            task = progress.add_task("ingesting", total=None)

            trace = os.environ.get("TRACKFLOW_TRACE_PHASES") == "1"
            started = time.monotonic()

            def on_phase(name: str) -> None:
                progress.update(task, description=f"ingesting: {name}")
                if trace:  # which step a kill interrupted (crash tests), where time goes
                    elapsed = time.monotonic() - started
                    print(f"phase {name} {elapsed:.2f}s", file=sys.stderr, flush=True)

            def on_batch(stats: DrainStats) -> None:
                progress.update(
                    task,
                    completed=stats.messages,
                    description=f"ingesting: extract ({stats.rejected} rejected)",
                )

            result = run(
                settings,
                warehouse,
                limits=limits,
                shard=owned,
                start_from=start_from,
                resume_from=resume_from,
                on_batch=on_batch,
                on_phase=on_phase,
            )
    except OffsetGapError as exc:
        raise fail(str(exc), code=3) from None
    except (IngestError, WarehouseError, SettingsError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        out.print_json(data=result.as_json())
        return
    if result.resumed_gaps:
        out.print(f"resumed past {result.resumed_gaps} recorded gap(s) from {resume_from}")
    out.print(result.summary())
    if result.commit_error:
        console.print(f"[yellow]warning:[/yellow] {result.commit_error}")


@app.command()
def collect(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="processes serving the port (default: COLLECTOR_WORKERS, else one per CPU up "
            "to 8, or 1 when COLLECTOR_RATE_LIMIT is set)",
        ),
    ] = None,
) -> None:
    """Run the Segment-compatible HTTP collector (write keys from COLLECTOR_WRITE_KEYS)."""
    from pipelines.collector.server import serve
    from pipelines.config import CollectorSettings
    from pipelines.tracking_plan import PlanError, load_plan

    try:
        settings = CollectorSettings.from_env()
        if workers is not None:
            settings = settings.model_copy(update={"workers": workers})
        if settings.tracking_plan.plan_file is not None:  # a bad plan fails before serving
            load_plan(settings.tracking_plan.plan_file)
    except (SettingsError, PlanError) as exc:
        raise fail(str(exc)) from None
    serve(host, port, settings)


@app.command()
def report(
    output: Annotated[
        Path | None,
        typer.Option(
            help="HTML file to write (default: report.html beside the warehouse); an existing "
            "file is replaced only if it is a report trackflow wrote"
        ),
    ] = None,
    open_: Annotated[bool, typer.Option("--open", help="open it in a browser")] = False,
) -> None:
    """Build the self-contained HTML report (funnels, sessions, data quality) from the warehouse."""
    import webbrowser

    from pipelines.dbt import DBT_PROJECT_DIR
    from pipelines.report import ReportError, build_report

    warehouse = _warehouse()
    try:
        with console.status("building report..."):
            summary = build_report(
                warehouse, output, dbt_run_results=DBT_PROJECT_DIR / "target/run_results.json"
            )
    except (ReportError, WarehouseError) as exc:
        raise fail(str(exc)) from None
    out.print(f"report: {summary.path}" + ("" if summary.has_data else " (no data yet)"))
    if open_:
        webbrowser.open(summary.path.resolve().as_uri())


@app.command()
def forget(
    user_id: Annotated[
        str | None, typer.Option(help="erase this user and every id stitched to it")
    ] = None,
    anonymous_id: Annotated[
        str | None, typer.Option(help="erase this anonymous visitor and every id stitched to it")
    ] = None,
    rebuild: Annotated[bool, typer.Option(help="rebuild the dbt models afterwards")] = True,
) -> None:
    """Erase a person from raw, dead letters, staging and marts; suppress them from now on."""
    from pipelines.erasure import forget as run
    from pipelines.privacy import PrivacyError

    warehouse = _warehouse()
    try:
        with console.status("erasing..."):
            result = run(warehouse, user_id=user_id, anonymous_id=anonymous_id, rebuild=rebuild)
    except (PrivacyError, WarehouseError, SettingsError) as exc:
        raise fail(str(exc)) from None
    out.print(
        f"erasure {result.request_id}: {result.identities} identities, "
        f"{result.total} raw rows deleted "
        f"({', '.join(f'{k}={v}' for k, v in result.rows_deleted.items())}); "
        "suppressed at ingestion and in staging" + ("; models rebuilt" if rebuild else "")
    )


@app.command("replay-rejected")
def replay_rejected(
    error_code: Annotated[
        list[str] | None, typer.Option(help="only rows with this error code (repeatable)")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="count what would load, change nothing")] = False,
) -> None:
    """Re-validate dead letters and load the ones that now pass (each at most once); with a
    tracking plan they meet the plan as it is now (--error-code plan_violation after a fix)."""
    from pipelines.privacy import PrivacyError
    from pipelines.replay import replay_rejected as run
    from pipelines.tracking_plan import PlanError

    warehouse = _warehouse()
    try:
        result = run(warehouse, error_code, dry_run=dry_run)
    except (WarehouseError, PrivacyError, SettingsError, PlanError, OSError) as exc:
        raise fail(str(exc)) from None
    verb = "would load" if dry_run else "loaded"
    out.print(
        f"examined {result.examined} rejected messages: {verb} {result.loaded}, "
        f"{result.still_rejected} still rejected"
    )


@plan_app.command("infer")
def plan_infer(
    output: Annotated[
        Path | None, typer.Option(help="YAML file to write (default: print it)")
    ] = None,
    required_share: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="a key seen in at least this share of events is required"
        ),
    ] = 0.99,
    max_enum: Annotated[
        int, typer.Option(min=0, help="strings with at most this many values become an enum")
    ] = 10,
) -> None:
    """Draft a tracking plan from the events already in the warehouse."""
    from pipelines.tracking_plan.infer import infer_plan

    warehouse = _warehouse()
    try:
        if not warehouse.exists():
            raise fail(f"{warehouse.describe()} does not exist; run 'trackflow ingest' first")
        draft = infer_plan(warehouse, required_share, max_enum)
    except WarehouseError as exc:
        raise fail(str(exc)) from None
    if output is None:
        out.print(draft.to_yaml(), markup=False, highlight=False, end="")
        return
    output.write_text(draft.to_yaml(), encoding="utf-8")
    console.print(f"drafted {draft.entries} entries from {draft.events} events: {output}")


@plan_app.command("check")
def plan_check(
    path: Annotated[Path | None, typer.Argument(help="the plan (default: TRACKING_PLAN)")] = None,
) -> None:
    """Check that a plan file is valid; print its version and what it lists."""
    from pipelines.config import TrackingPlanSettings
    from pipelines.tracking_plan import PlanError, load_plan

    try:
        path = path or TrackingPlanSettings.from_env().plan_file
        if path is None:
            raise fail("no plan given and TRACKING_PLAN is not set")
        plan = load_plan(path)
    except (PlanError, SettingsError) as exc:
        raise fail(str(exc)) from None
    kinds = [k for k, _ in plan.entries]
    out.print(
        f"{path}: version {plan.version}, {kinds.count('track')} events, "
        f"{kinds.count('page')} pages, {kinds.count('screen')} screens"
    )


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


if __name__ == "__main__":  # pragma: no cover
    app()
