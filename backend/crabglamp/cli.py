"""The `crabglamp` command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from crabglamp.settings import Settings

# How long an idle keep-alive connection stays open. uvicorn's default, 5 s, is no longer than
# the idle expiry of common clients' pools (httpx 5 s, aiohttp 15 s; load balancers commonly
# 60 s): such a client reuses a connection just as the server closes it, and its request fails
# with a reset. 75 s outlasts them, so the client lets go of an idle connection first. (Browsers
# keep theirs longer still, but retry a request that fails on a reused connection.)
KEEP_ALIVE_SECONDS = 75


def _serve_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)


def build_parser() -> argparse.ArgumentParser:
    # The development subcommands (demo, fake-upstream, token) live in dev/: the one import of
    # them, inside this function (ARCHITECTURE.md rule 4). They keep their place in the help.
    from crabglamp.dev import commands as dev_commands

    parser = argparse.ArgumentParser(prog="crabglamp", description="CrabGlamp Usage")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve", help="serve the API and dashboard (upgrades the database first)"
    )
    _serve_args(serve)

    dev_commands.add_demo(sub, _serve_args, _migrate, _serve)

    sub.add_parser("migrate", help="upgrade the database to the newest schema")

    imp = sub.add_parser("import", help="import a JSON Lines usage bundle")
    imp.add_argument("file", help="the bundle, or - for standard input")
    imp.add_argument(
        "--skip-invalid", action="store_true", help="write the good lines, report the rest"
    )

    exp = sub.add_parser("export", help="export an account's month as a JSON Lines bundle")
    exp.add_argument("--account", required=True, help="account id (UUID)")
    exp.add_argument("--month", required=True, help="YYYY-MM")
    exp.add_argument("--output", "-o", default="-", help="file to write, or - for standard output")

    sdl = sub.add_parser("schema", help="print the GraphQL schema (SDL) that schema.graphql holds")
    sdl.add_argument("--output", "-o", default="-", help="file to write, or - for standard output")

    key = sub.add_parser("key", help="manage virtual keys from the shell")
    key_sub = key.add_subparsers(dest="key_command", required=True, metavar="ACTION")
    create = key_sub.add_parser("create", help="create a virtual key; prints its secret once")
    create.add_argument("--account", required=True, help="account id (UUID)")
    create.add_argument("--name", required=True, help="the key's name, e.g. prod")
    create.add_argument("--provider", help="only models of this provider (e.g. openai)")
    create.add_argument(
        "--cap", metavar="CENTS", help="monthly spend cap in cents (none: uncapped)"
    )

    dev_commands.add_fake_upstream(sub)
    dev_commands.add_token(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    handler = getattr(args, "handler", None)
    if handler is not None:
        # A development subcommand: its parser named the function that runs it.
        return int(handler(settings, args))
    if args.command == "migrate":
        asyncio.run(_migrate(settings))
        print(f"database at head: {settings.database_url}")
        return 0
    if args.command == "serve":
        asyncio.run(_migrate(settings))
        return _serve(settings, args.host, args.port, args.workers)
    if args.command == "import":
        from crabglamp.bundle.commands import import_command

        return asyncio.run(import_command(settings, args.file, skip_invalid=args.skip_invalid))
    if args.command == "export":
        from crabglamp.bundle.commands import export_command

        return asyncio.run(export_command(settings, args.account, args.month, args.output))
    if args.command == "schema":
        from crabglamp.api.graphql.schema import write_sdl

        write_sdl(args.output)
        return 0
    if args.command == "key":
        from crabglamp.keys import create_command

        asyncio.run(_migrate(settings))
        return asyncio.run(
            create_command(
                settings.database_url,
                args.account,
                args.name,
                args.provider,
                args.cap,
                sys.stdout,
                sys.stderr,
            )
        )
    raise AssertionError(args.command)


async def _migrate(settings: Settings) -> None:
    from crabglamp.db import make_engine
    from crabglamp.migrate import upgrade

    engine = make_engine(settings.database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def _serve(settings: Settings, host: str, port: int, workers: int) -> int:
    import uvicorn

    from crabglamp.dev.devtokens.signing import DEV_ORIGINS_ENV, serve_origins

    # Development tokens name their origin (azp): let the workers accept the one they serve.
    os.environ.setdefault(DEV_ORIGINS_ENV, ",".join(serve_origins(host, port)))
    print(
        f"CrabGlamp Usage on http://{host}:{port}/  (database: {settings.database_url})", flush=True
    )
    config = uvicorn.Config(
        "crabglamp.server:app",
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        # No access log line per request (the proxy writes its own structured one); the event
        # loop and HTTP parser stay on "auto": uvloop and httptools, both dependencies.
        access_log=False,
        proxy_headers=True,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
    with _metrics_across_workers(workers):
        if workers == 1:
            uvicorn.Server(config).run()
            return 0
        from uvicorn.supervisors import Multiprocess

        # uvicorn binds the workers' shared socket without naming TCP as its protocol, so
        # asyncio never sets TCP_NODELAY on the connections they accept, and a response written
        # in two parts (headers, body) waits ~40 ms for the client's delayed ACK. Linux hands
        # the option on from the listening socket to every connection accepted from it.
        sock = config.bind_socket()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        Multiprocess(config, sockets=[sock]).run()
        return 0


@contextlib.contextmanager
def _metrics_across_workers(workers: int) -> Iterator[None]:
    """The workers write their metrics to files in one folder, and `/metrics` sums them: the
    folder named by PROMETHEUS_MULTIPROC_DIR, or else a fresh one for this run. Set before the
    workers start: prometheus-client reads it once, when a worker first imports it."""
    from crabglamp.proxy.metrics import MULTIPROC_DIR_ENV

    chosen = os.environ.get(MULTIPROC_DIR_ENV)
    if chosen:
        # The files of an earlier run would add its counts to this one's.
        folder = Path(chosen)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
        yield
        return
    if workers == 1:
        yield  # one process keeps its metrics in memory
        return
    with tempfile.TemporaryDirectory(prefix="crabglamp-metrics-") as made:
        os.environ[MULTIPROC_DIR_ENV] = made
        try:
            yield
        finally:
            del os.environ[MULTIPROC_DIR_ENV]


if __name__ == "__main__":
    sys.exit(main())
