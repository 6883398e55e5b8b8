"""Command line: run, serve, envoy-config, validate, keys, usage."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from extproc.config import ConfigError, Gateway, load_gateway
from extproc.config.address import parse_grpc_address, worker_addresses
from extproc.config.model import ProcessorTls
from extproc.config.schema import PLAINTEXT_REFUSED
from extproc.pipeline.auth import digest_key
from extproc.pipeline.key_format import new_key

if TYPE_CHECKING:
    from extproc.spend.stores import LedgerStore

TLS_DIR_HELP = (
    "mTLS from a Kubernetes TLS Secret mounted here: tls.crt, tls.key and the ca.crt both "
    "sides' certificates chain to"
)
QUIET_LIBRARIES = ("botocore", "google.auth", "urllib3")
"""Cloud credential libraries whose debug logs hold credentials (botocore logs each canonical
request, session token included): warnings only, whatever the gateway's own level."""


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("EXTPROC_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        result: int = args.command(args)
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="extproc", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the whole gateway (processor + Envoy) here")
    run.add_argument("--config", required=True, type=Path)
    run.add_argument("--port", type=int, help="public port (overrides listen.port; 0 = any)")
    run.add_argument(
        "--mock-provider",
        type=int,
        metavar="PORT",
        help="also start the mock provider on PORT (a development tool: `make venv` installs it)",
    )
    run.set_defaults(command=_run)

    serve = commands.add_parser("serve", help="run the ext_proc processor alone")
    serve.add_argument("--config", required=True, type=Path)
    serve.add_argument("--address", help="host:port or unix:/path (overrides processor.address)")
    serve.add_argument("--workers", type=int, help="worker processes (overrides processor.workers)")
    serve.add_argument(
        "--allow-plaintext",
        action="store_true",
        help="serve plaintext TCP on a reachable address: only behind a mesh sidecar that "
        "authenticates Envoy (overrides processor.allow_plaintext)",
    )
    serve.add_argument("--tls-dir", type=Path, help=TLS_DIR_HELP + " (overrides processor.tls)")
    # Set by the worker supervisor: worker i serves /metrics on the configured port + i.
    serve.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    serve.set_defaults(command=_serve)

    envoy = commands.add_parser("envoy-config", help="write the Envoy bootstrap for a config")
    envoy.add_argument("--config", required=True, type=Path)
    envoy.add_argument("--output", type=Path, help="file to write (default: standard output)")
    envoy.set_defaults(command=_envoy_config)

    validate = commands.add_parser("validate", help="check configuration files")
    validate.add_argument("files", nargs="+", type=Path)
    validate.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="the processor's memory limit (512Mi, 1GiB); default: this container's, if any",
    )
    validate.set_defaults(command=_validate)

    _add_keys_commands(commands)

    health = commands.add_parser("health", help="probe the processor or Envoy (exit 0 = good)")
    probe = health.add_mutually_exclusive_group(required=True)
    probe.add_argument("--processor", metavar="ADDRESS", help="gRPC health of a processor")
    probe.add_argument("--envoy-admin", metavar="HOST:PORT", help="Envoy admin /ready")
    credentials = health.add_mutually_exclusive_group()
    credentials.add_argument(
        "--config", type=Path, help="the configuration: where the processor requires mTLS"
    )
    credentials.add_argument("--tls-dir", type=Path, help=TLS_DIR_HELP)
    health.set_defaults(command=_health)

    usage = commands.add_parser("usage", help="show what each limit used and has left")
    usage.add_argument("--config", required=True, type=Path)
    usage.add_argument(
        "--processor",
        help="the processor's address, for the memory store (default: processor.address)",
    )
    usage.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    usage.add_argument(
        "--subject",
        metavar="CLAIM=VALUE",
        action="append",
        help="also one caller's per-subject limits (sub=alice; repeat for several claims)",
    )
    usage.set_defaults(command=_usage)
    _add_spend_commands(commands)

    return parser


def _add_spend_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    spend = commands.add_parser(
        "spend",
        help="what was spent, from the spend ledger (or `spend reconcile`)",
        description="Totals from the spend ledger, grouped; `extproc spend reconcile` sets "
        "them beside the quota counters.",
    )
    spend.add_argument("--config", type=Path, help="the gateway's configuration (required)")
    spend.add_argument(
        "--by", choices=("team", "key", "model", "provider", "alias", "day"), default="team"
    )
    spend.add_argument(
        "--since", default="30d", help="a date, an instant or a duration back (default 30d)"
    )
    spend.add_argument("--until", help="a date, an instant or a duration back (default now)")
    spend.add_argument("--format", choices=("table", "csv", "json"), default="table")
    spend.set_defaults(command=_spend)
    actions = spend.add_subparsers(metavar="ACTION")
    reconcile = actions.add_parser(
        "reconcile",
        help="each limit's counter beside the ledger's sum (exit 1 when they differ)",
    )
    reconcile.add_argument("--config", required=True, type=Path)
    reconcile.add_argument(
        "--processor",
        help="the processor's address, for the memory store (default: processor.address)",
    )
    reconcile.add_argument("--json", action="store_true", help="print JSON lines")
    reconcile.set_defaults(command=_spend_reconcile)


def _add_keys_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="make and hash gateway keys")
    key_commands = keys.add_subparsers(required=True, metavar="ACTION")
    new = key_commands.add_parser("new", help="print a new random key and its digest")
    new.set_defaults(command=_keys_new)
    rotate = key_commands.add_parser(
        "rotate",
        help="print a new key for an entry, and the entry with the old key(s) expiring after "
        "a grace period",
    )
    rotate.add_argument("key_id", metavar="ID")
    rotate.add_argument("--config", required=True, type=Path)
    rotate.add_argument(
        "--grace", default="7d", help="how long the old key stays valid (default 7d)"
    )
    rotate.set_defaults(command=_keys_rotate)
    hash_ = key_commands.add_parser("hash", help="print the digest of a key ('-' reads stdin)")
    hash_.add_argument("key")
    hash_.set_defaults(command=_keys_hash)


def _health(args: argparse.Namespace) -> int:
    from extproc.counters import client_tls
    from extproc.health import envoy_ready, processor_serving

    if args.processor:
        tls = None
        if args.tls_dir is not None:
            tls = client_tls(args.processor, ProcessorTls.from_directory(args.tls_dir))
        elif args.config is not None:
            gateway = load_gateway(args.config, resolve_secrets=False)
            tls = client_tls(args.processor, gateway.processor.tls)
        healthy = processor_serving(args.processor, tls)
    else:
        healthy = envoy_ready(args.envoy_admin)
    print("ok" if healthy else "not ready")
    return 0 if healthy else 1


def _usage(args: argparse.Namespace) -> int:

    import orjson

    from extproc.quota.store import StoreUnavailable
    from extproc.usage_report import current_usage, format_table

    gateway = load_gateway(args.config)
    subject = dict(item.partition("=")[::2] for item in args.subject) if args.subject else None
    try:
        rows = asyncio.run(
            current_usage(gateway, processor=args.processor, now=time.time(), subject=subject)
        )
    except StoreUnavailable as error:
        print(f"cannot read the counters: {error}", file=sys.stderr)
        return 1
    if args.json:
        for row in rows:
            print(orjson.dumps(row.as_dict()).decode())
    else:
        print(format_table(rows))
    return 0


def _spend(args: argparse.Namespace) -> int:
    from extproc.spend.reports import parse_instant, render, spend_report

    if args.config is None:
        print("extproc spend: --config is required", file=sys.stderr)
        return 2
    try:
        since = parse_instant(args.since)
        until = parse_instant(args.until) if args.until else time.time() + 1
    except ValueError as error:
        print(f"extproc spend: {error}", file=sys.stderr)
        return 2
    with _spend_ledger(load_gateway(args.config)) as store:
        if store is None:
            return 2
        entries = spend_report(store, args.by, since, until)
    print(render(entries, args.by, args.format))
    return 0


def _spend_reconcile(args: argparse.Namespace) -> int:
    import orjson

    from extproc.quota.store import StoreUnavailable
    from extproc.spend.reconcile import earliest, format_table, reconciled_limits, standings
    from extproc.usage_report import configured_limits, read_counters

    gateway = load_gateway(args.config)
    now = time.time()
    limits = reconciled_limits(configured_limits(gateway))
    with _spend_ledger(gateway) as store:
        if store is None:
            return 2
        try:
            counters = [limit.counter_at(now)[0] for limit in limits]
            counted = asyncio.run(read_counters(gateway, counters, processor=args.processor))
        except StoreUnavailable as error:
            print(f"cannot read the counters: {error}", file=sys.stderr)
            return 1
        lines = standings(limits, counted, store.rows(earliest(limits, now), now + 1), now)
    if args.json:
        for line in lines:
            print(orjson.dumps(line.as_dict()).decode())
    else:
        print(format_table(lines))
    return 0 if all(line.agrees for line in lines) else 1


@contextlib.contextmanager
def _spend_ledger(gateway: Gateway) -> Iterator[LedgerStore | None]:
    """The configuration's spend ledger, its schema brought up to date (None, said on
    stderr: the configuration keeps none)."""
    from extproc.spend.stores import open_ledger_store

    if gateway.spend.ledger is None:
        print("this configuration keeps no spend ledger (spend.ledger)", file=sys.stderr)
        yield None
        return
    store = open_ledger_store(gateway.spend.ledger.store.reveal())
    try:
        store.migrate()
        yield store
    finally:
        store.close()


def _run(args: argparse.Namespace) -> int:
    from extproc.run import run_gateway

    gateway = load_gateway(args.config)
    return asyncio.run(run_gateway(gateway, port=args.port, mock_port=args.mock_provider))


def _serve(args: argparse.Namespace) -> int:
    import uvloop

    from extproc.server import serve
    from extproc.workers import serve_workers

    gateway = load_gateway(args.config)
    addresses = worker_addresses(
        args.address or gateway.processor.address, args.workers or gateway.processor.workers
    )
    tls = gateway.processor.tls
    if args.tls_dir is not None:
        tls = ProcessorTls.from_directory(args.tls_dir)
    plaintext = args.allow_plaintext or gateway.processor.allow_plaintext
    reachable = not all(parse_grpc_address(address).local for address in addresses)
    if reachable and tls is None and not plaintext:
        print(f"{args.config}: processor: {PLAINTEXT_REFUSED}", file=sys.stderr)
        return 2
    if len(addresses) == 1:
        # uvloop's event loop and transports, in C: the gateway's p50 at one connection went
        # from 1.70 to 1.45 ms here (README, performance).
        uvloop.run(serve(gateway, addresses[0], worker=args.worker_index, tls=tls))
        return 0
    flags = ["--allow-plaintext"] if args.allow_plaintext else []
    flags += ["--tls-dir", str(args.tls_dir)] if args.tls_dir is not None else []
    return asyncio.run(serve_workers(gateway.source, addresses, flags))


def _envoy_config(args: argparse.Namespace) -> int:
    import yaml

    from extproc.envoyconfig.bootstrap import build_bootstrap, render
    from extproc.envoyconfig.placement import placement_of

    gateway = load_gateway(args.config, resolve_secrets=False)
    text = yaml.safe_dump(render(build_bootstrap(gateway, placement_of(gateway))), sort_keys=False)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
    return 0


def _validate(args: argparse.Namespace) -> int:
    failed = False
    for path in args.files:
        try:
            gateway: Gateway = load_gateway(path)
        except ConfigError as error:
            print(error, file=sys.stderr)
            failed = True
            continue
        print(
            f"{path}: OK ({len(gateway.providers)} providers, {len(gateway.models)} models, "
            f"{len(gateway.principals)} keys)"
        )
        _report_memory(gateway, args.memory_limit)
    return 1 if failed else 0


def _report_memory(gateway: Gateway, limit_text: str | None) -> None:
    """What the processor needs for this configuration, and a warning when its memory limit
    (given, or this container's) cannot hold it."""
    from extproc.config.sizing import MiB, container_limit, processor_memory
    from extproc.config.units import parse_size

    need = processor_memory(gateway)
    workers = gateway.processor.workers
    body = gateway.listen.max_request_body
    print(
        f"  processor memory: needs about {need // MiB} MiB ({workers} worker"
        f"{'s' if workers > 1 else ''}, max_request_body {body / MiB:g} MiB)"
    )
    limit = parse_size(limit_text) if limit_text else container_limit()
    if limit is not None and limit < need:
        print(
            f"warning: the processor's memory limit ({limit // MiB} MiB) is below what "
            f"{workers} worker(s) with max_request_body {body / MiB:g} MiB need ({need // MiB} "
            "MiB): raise the limit, or lower max_request_body or processor.workers",
            file=sys.stderr,
        )


def _keys_new(args: argparse.Namespace) -> int:
    key = new_key()
    print(f"key:    {key}\nsha256: {digest_key(key)}")
    return 0


def _keys_rotate(args: argparse.Namespace) -> int:
    import yaml

    from extproc.config.key_rotation import rotated_entry
    from extproc.config.loader import load_key_entries
    from extproc.config.units import parse_duration

    try:
        grace = parse_duration(args.grace)
    except ValueError as error:
        print(f"--grace: {error}", file=sys.stderr)
        return 2
    _, entries = load_key_entries(args.config)
    found = [(where, entry) for where, entry in entries if entry.id == args.key_id]
    if not found:
        print(f"{args.config}: no key with id {args.key_id!r}", file=sys.stderr)
        return 1
    [(where, entry)] = found
    key = new_key()
    document = rotated_entry(entry, digest_key(key), now=time.time(), grace=grace)
    in_file = where.startswith("key_files/")
    if in_file:
        del document["id"]
        place = f"The file {where.removeprefix('key_files/')} in the key_files directory"
    else:
        place = f"The entry {where} (id {entry.id}) in {args.config}"
    print(f"key:    {key}\nsha256: {digest_key(key)}\n")
    print(f"# {place} becomes (the old key works until its expires_at):")
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    print(text if in_file else "- " + text.replace("\n", "\n  ").rstrip() + "\n", end="")
    return 0


def _keys_hash(args: argparse.Namespace) -> int:
    key = sys.stdin.readline().strip() if args.key == "-" else args.key
    print(digest_key(key))
    return 0
