"""The `crabglamp` subcommands that serve development only: `demo`, `fake-upstream` and `token`.

The product CLI (`cli.py`) imports this module once, lazily, while it builds its parser; each
subcommand's parser names the function that runs it (`handler`), so the CLI runs it without
knowing dev/. The demo ends by serving like `crabglamp serve`, so the CLI hands over its own
`migrate` and `serve` instead of this module importing the CLI back.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from functools import partial
from typing import TypeAlias

from crabglamp.settings import Settings

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
Migrate: TypeAlias = Callable[[Settings], Coroutine[object, object, None]]
Serve: TypeAlias = Callable[[Settings, str, int, int], int]


def add_demo(
    sub: Subparsers,
    serve_args: Callable[[argparse.ArgumentParser], None],
    migrate: Migrate,
    serve: Serve,
) -> None:
    demo = sub.add_parser("demo", help="seed demo data into the database, then serve it")
    serve_args(demo)
    demo.add_argument("--no-serve", action="store_true", help="seed only")
    demo.add_argument("--seed", type=int, default=7, help="random seed of the demo data")
    demo.add_argument(
        "--scale", type=float, default=1.0, help="background traffic volume (1 = ~300k events)"
    )
    demo.set_defaults(handler=partial(_demo, migrate=migrate, serve=serve))


def add_fake_upstream(sub: Subparsers) -> None:
    fake = sub.add_parser(
        "fake-upstream",
        help="serve a LOCAL FAKE OpenAI-compatible provider (a stand-in for tests and the demo)",
    )
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=9100)
    fake.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
    fake.add_argument("--output-tokens", type=int, default=16, help="answer length by default")
    fake.set_defaults(handler=_fake_upstream)


def add_token(sub: Subparsers) -> None:
    tok = sub.add_parser("token", help="print a development session token (never in production)")
    tok.add_argument("--user", required=True, help="user id, the token's sub (e.g. user_demo_bob)")
    tok.add_argument("--org", help="organisation id, the token's o.id (e.g. org_demo_acme)")
    tok.add_argument("--role", choices=["admin", "member"], help="role in --org (default member)")
    tok.add_argument("--admin", action="store_true", help="platform admin (metadata.role=admin)")
    tok.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    tok.add_argument("--azp", help="authorized party (default http://127.0.0.1:8000)")
    tok.set_defaults(handler=token_command)


# Each command imports what it runs when it runs: every `crabglamp` command builds this parser,
# and neither `crabglamp migrate` nor `crabglamp token` needs the demo or the fake provider.


def _demo(settings: Settings, args: argparse.Namespace, *, migrate: Migrate, serve: Serve) -> int:
    from crabglamp.dev.demo import DemoError, seed_demo

    asyncio.run(migrate(settings))
    try:
        asyncio.run(seed_demo(settings, seed=args.seed, scale=args.scale))
    except DemoError as exc:
        print(f"crabglamp demo: {exc}", file=sys.stderr)
        return 2
    if args.no_serve:
        return 0
    if not settings.upstream_config:
        from crabglamp.dev.fake_upstream import start_in_thread, upstream_environment

        # The demo's proxy forwards to the local fake provider: nothing leaves the machine.
        fake = start_in_thread()
        for name, value in upstream_environment(fake).items():
            os.environ.setdefault(name, value)
        print(f"Proxy upstream: the local fake provider at {fake}/v1", flush=True)
    return serve(settings, args.host, args.port, args.workers)


def _fake_upstream(settings: Settings, args: argparse.Namespace) -> int:
    from crabglamp.dev.fake_upstream import serve

    return serve(args.host, args.port, args.latency_ms, args.output_tokens)


def token_command(settings: Settings, args: argparse.Namespace) -> int:
    """`crabglamp token`: print one dev token on stdout; exit 2 on refusal or bad arguments."""
    from crabglamp.dev.devtokens.signing import USER_ID, mint_dev_token

    if settings.production:
        print(
            "crabglamp token: refused: production settings (CRABGLAMP_PRODUCTION) never sign "
            "development tokens",
            file=sys.stderr,
        )
        return 2
    problem = None
    if args.ttl <= 0:
        problem = "--ttl must be a positive number of seconds"
    elif args.role and not args.org:
        problem = "--role needs --org"
    elif not USER_ID.fullmatch(args.user):
        problem = "--user must be a user id (letters, digits, _ and -)"
    if problem:
        print(f"crabglamp token: {problem}", file=sys.stderr)
        return 2
    if settings.clerk_jwt_key:
        print(
            "crabglamp token: warning: CLERK_JWT_KEY is set, so the server verifies Clerk tokens "
            "and will refuse this development token",
            file=sys.stderr,
        )
    print(
        mint_dev_token(
            args.user,
            org_id=args.org,
            org_role=args.role,
            admin=args.admin,
            ttl=args.ttl,
            azp=args.azp,
            settings=settings,
        )
    )
    return 0
