"""The `crabglamp` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from crabglamp.settings import Settings


def _serve_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crabglamp", description="CrabGlamp Usage")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve", help="serve the API and dashboard (upgrades the database first)"
    )
    _serve_args(serve)

    demo = sub.add_parser("demo", help="seed demo data into the database, then serve it")
    _serve_args(demo)
    demo.add_argument("--no-serve", action="store_true", help="seed only")
    demo.add_argument("--seed", type=int, default=7, help="random seed of the demo data")

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

    tok = sub.add_parser("token", help="print a development session token (never in production)")
    tok.add_argument("--user", required=True, help="user id, the token's sub (e.g. user_demo_bob)")
    tok.add_argument("--org", help="organisation id, the token's o.id (e.g. org_demo_acme)")
    tok.add_argument("--role", choices=["admin", "member"], help="role in --org (default member)")
    tok.add_argument("--admin", action="store_true", help="platform admin (metadata.role=admin)")
    tok.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    tok.add_argument("--azp", help="authorized party (default http://127.0.0.1:8000)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    if args.command == "migrate":
        asyncio.run(_migrate(settings))
        print(f"database at head: {settings.database_url}")
        return 0
    if args.command == "serve":
        asyncio.run(_migrate(settings))
        return _serve(settings, args.host, args.port, args.workers)
    if args.command == "demo":
        from crabglamp.demo import seed_demo

        asyncio.run(_migrate(settings))
        asyncio.run(seed_demo(settings, seed=args.seed))
        if args.no_serve:
            return 0
        return _serve(settings, args.host, args.port, args.workers)
    if args.command == "import":
        from crabglamp.bundle import import_command

        return asyncio.run(import_command(settings, args.file, skip_invalid=args.skip_invalid))
    if args.command == "export":
        from crabglamp.bundle import export_command

        return asyncio.run(export_command(settings, args.account, args.month, args.output))
    if args.command == "token":
        from crabglamp.devtokens import token_command

        return token_command(settings, args)
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

    from crabglamp.devtokens import DEV_ORIGINS_ENV, serve_origins

    # Development tokens name their origin (azp): let the workers accept the one they serve.
    os.environ.setdefault(DEV_ORIGINS_ENV, ",".join(serve_origins(host, port)))
    print(
        f"CrabGlamp Usage on http://{host}:{port}/  (database: {settings.database_url})", flush=True
    )
    uvicorn.run(
        "crabglamp.server:app",
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        proxy_headers=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
