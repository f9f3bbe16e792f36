"""A LOCAL FAKE of an OpenAI-compatible provider — a stand-in for the real ones, never billed.

Tests, benchmarks and `crabglamp demo` point the proxy here instead of at OpenAI, Anthropic and
the others. It answers chat completions (plain and streamed), embeddings and speech with
deterministic usage: a prompt costs ceil(characters / 4) tokens, an answer is "crab " repeated,
one token each. Behaviour on demand is asked for inside the request's text:

    [fake:output=N]          answer with N tokens (never more than max_tokens)
    [fake:output=random]     0..max_tokens tokens, the same for the same request
    [fake:output=random:N]   0..N tokens (max_tokens still applies)
    [fake:status=503]        fail with that HTTP status and an OpenAI-style error
    [fake:delay=2.5]         wait that many seconds before answering
    [fake:chunk_delay=0.1]   wait between streamed chunks
    [fake:cut_after=3]       drop the connection after 3 streamed chunks
    [fake:prompt=N]          report N prompt tokens (whatever the text's length)
    [fake:cached=N]          N of them read from the prompt cache
    [fake:reasoning=N]       N reasoning tokens more in the completion (not in its text)
    [fake:audio_in=N] [fake:audio_out=N]   audio tokens of the prompt / the completion
    [fake:cache_write_5m=N] [fake:cache_write_1h=N]   cache writes (Anthropic's models)
    [fake:tier=flex]         the service tier it says it served (default: the request's
                             `service_tier`, else "default")
    [fake:no_usage=1]        report no usage at all

Speech asked for with `stream_format: "sse"` answers in OpenAI's event shape
(`speech.audio.delta` events, then `speech.audio.done` with `input_tokens` of the text and
`output_tokens` of audio: 2 per character, or `[fake:audio_out=N]`); `cut_after` and
`no_usage` apply there too.

Usage comes in the shape each provider documents: OpenAI's `usage` (`prompt_tokens_details`,
`completion_tokens_details`, `service_tier` beside it) for every model but Anthropic's, whose
answers carry Anthropic's usage object (`input_tokens` without the cached ones,
`cache_read_input_tokens`, `cache_creation_input_tokens` and its `cache_creation` split by
time-to-live, `service_tier` "standard").

Run it on its own with `crabglamp fake-upstream --port 9100 [--latency-ms 20]`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import re
import struct
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

NAME = "crabglamp-fake-upstream"
DIRECTIVE_RE = re.compile(r"\[fake:([a-z0-9_]+)=([^\]]*)\]")
DEFAULT_OUTPUT_TOKENS = 16
TOKEN = "crab "


@dataclass(slots=True)
class FakeState:
    latency_seconds: float = 0.0
    default_output_tokens: int = DEFAULT_OUTPUT_TOKENS
    # What arrived, for tests: the Authorization header and the body of each request.
    seen: list[tuple[str | None, dict[str, Any]]] = field(default_factory=list)
    keep_seen: bool = False


def prompt_tokens(text_chars: int) -> int:
    return max(1, math.ceil(text_chars / 4))


def _texts(value: Any) -> list[str]:
    """Every string of message contents (plain strings and text parts)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _texts(item)]
    if isinstance(value, dict):
        if value.get("type") == "text" and isinstance(value.get("text"), str):
            return [value["text"]]
        if "content" in value:
            return _texts(value["content"])
    return []


def _directives(texts: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for text in texts:
        for name, value in DIRECTIVE_RE.findall(text):
            found[name] = value
    return found


def _error(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "fake_upstream_error", "param": None, "code": code}},
        status_code=status,
        headers={"x-fake-upstream": NAME},
    )


def _output_tokens(
    body: dict[str, Any], directives: dict[str, str], default: int, seed: str
) -> int:
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    wanted = directives.get("output")
    if wanted is not None and wanted.startswith("random"):
        _, _, bound = wanted.partition(":")
        top = int(bound) if bound else int(limit) if limit else default
        digest = hashlib.sha256(seed.encode("utf-8")).digest()
        n = int.from_bytes(digest[:8], "big") % (top + 1)
        return min(n, int(limit)) if limit else n
    n = int(wanted) if wanted is not None else default
    return min(n, int(limit)) if limit else n


async def _prelude(state: FakeState, request: Request) -> tuple[dict[str, Any], Response | None]:
    try:
        body = await request.json()
    except ValueError:
        return {}, _error(400, "the body is not JSON", "invalid_json")
    if not isinstance(body, dict):
        return {}, _error(400, "the body must be a JSON object", "invalid_json")
    if state.keep_seen:
        state.seen.append((request.headers.get("authorization"), body))
    if state.latency_seconds:
        await asyncio.sleep(state.latency_seconds)
    return body, None


async def _misbehave(directives: dict[str, str]) -> Response | None:
    if "delay" in directives:
        await asyncio.sleep(float(directives["delay"]))
    if "status" in directives:
        status = int(directives["status"])
        return _error(status, f"the fake upstream was asked to fail with {status}", "fake_failure")
    return None


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _number(directives: dict[str, str], name: str) -> int:
    return max(0, int(directives.get(name, 0)))


def provider_usage(
    model: str, prompt: int, completion: int, directives: dict[str, str]
) -> dict[str, Any]:
    """The usage object a provider would report for these counts (see the module docstring)."""
    cached = min(_number(directives, "cached"), prompt)
    reasoning = _number(directives, "reasoning")
    if model.startswith("claude"):
        write_5m = _number(directives, "cache_write_5m")
        write_1h = _number(directives, "cache_write_1h")
        return {
            "input_tokens": max(0, prompt - cached - write_5m - write_1h),
            "cache_creation_input_tokens": write_5m + write_1h,
            "cache_read_input_tokens": cached,
            "cache_creation": {
                "ephemeral_5m_input_tokens": write_5m,
                "ephemeral_1h_input_tokens": write_1h,
            },
            "output_tokens": completion + reasoning,
            "service_tier": "standard",
        }
    completion += reasoning
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {
            "cached_tokens": cached,
            "audio_tokens": min(_number(directives, "audio_in"), prompt),
        },
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": _number(directives, "audio_out"),
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _tier(body: dict[str, Any], directives: dict[str, str]) -> str | None:
    if str(body.get("model", "")).startswith("claude"):
        return None  # Anthropic's tier is inside its usage object
    asked = body.get("service_tier")
    default = asked if isinstance(asked, str) and asked != "auto" else "default"
    return directives.get("tier", default)


async def chat_completions(request: Request) -> Response:
    state: FakeState = request.app.state.fake
    body, problem = await _prelude(state, request)
    if problem is not None:
        return problem
    texts = _texts(body.get("messages", []))
    directives = _directives(texts)
    failed = await _misbehave(directives)
    if failed is not None:
        return failed
    model = str(body.get("model", "fake-model"))
    usage_in = _number(directives, "prompt") or prompt_tokens(sum(len(t) for t in texts))
    n = _output_tokens(
        body, directives, state.default_output_tokens, json.dumps(body, sort_keys=True)
    )
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    finish = "length" if limit and n >= int(limit) else "stop"
    completion_id = f"chatcmpl-fake-{uuid.uuid4().hex}"
    created = int(time.time())
    usage = provider_usage(model, usage_in, n, directives)
    tier = _tier(body, directives)
    reports_usage = "no_usage" not in directives
    if not body.get("stream"):
        answer: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": NAME,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": TOKEN * n, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
        }
        if reports_usage:
            answer["usage"] = usage
        if tier is not None:
            answer["service_tier"] = tier
        return JSONResponse(answer, headers={"x-fake-upstream": NAME})
    include_usage = reports_usage and bool((body.get("stream_options") or {}).get("include_usage"))
    chunk_delay = float(directives.get("chunk_delay", 0))
    cut_after = int(directives["cut_after"]) if "cut_after" in directives else None

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": NAME,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if tier is not None:
            payload["service_tier"] = tier
        if include_usage:
            payload["usage"] = None
        return _sse(payload)

    async def events() -> AsyncIterator[bytes]:
        yield chunk({"role": "assistant", "content": ""})
        for index in range(n):
            if cut_after is not None and index >= cut_after:
                raise ConnectionAbortedError("the fake upstream was asked to cut the stream")
            if chunk_delay:
                await asyncio.sleep(chunk_delay)
            yield chunk({"content": TOKEN})
        yield chunk({}, finish)
        if include_usage:
            final: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": NAME,
                "choices": [],
                "usage": usage,
            }
            if tier is not None:
                final["service_tier"] = tier
            yield _sse(final)
        yield b"data: [DONE]\n\n"

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"x-fake-upstream": NAME}
    )


def _embedding_inputs(value: Any) -> list[int]:
    """Tokens per input: strings cost ceil(chars / 4); token arrays cost their length."""
    if isinstance(value, str):
        return [prompt_tokens(len(value))]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return [len(value)]
    if isinstance(value, list):
        return [count for item in value for count in _embedding_inputs(item)]
    return []


async def embeddings(request: Request) -> Response:
    state: FakeState = request.app.state.fake
    body, problem = await _prelude(state, request)
    if problem is not None:
        return problem
    inputs = body.get("input")
    directives = _directives(_texts(inputs))
    failed = await _misbehave(directives)
    if failed is not None:
        return failed
    counts = _embedding_inputs(inputs)
    if not counts:
        return _error(400, "input must be a string, a list of strings or token arrays", "bad_input")
    dimensions = int(body.get("dimensions") or 8)
    data = []
    for index, count in enumerate(counts):
        vector = [((index + 1) * (d + 1) * count % 97) / 97.0 for d in range(dimensions)]
        embedding: Any = vector
        if body.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    total = _number(directives, "prompt") or sum(counts)
    answer: dict[str, Any] = {
        "object": "list",
        "data": data,
        "model": str(body.get("model", "fake-embedding")),
    }
    if "no_usage" not in directives:
        answer["usage"] = {"prompt_tokens": total, "total_tokens": total}
    return JSONResponse(answer, headers={"x-fake-upstream": NAME})


_AUDIO_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}


async def speech(request: Request) -> Response:
    state: FakeState = request.app.state.fake
    body, problem = await _prelude(state, request)
    if problem is not None:
        return problem
    text = body.get("input")
    if not isinstance(text, str):
        return _error(400, "input must be a string", "bad_input")
    failed = await _misbehave(_directives([text]))
    if failed is not None:
        return failed
    response_format = str(body.get("response_format") or "mp3")
    # Not audio: a recognisable stand-in, 16 bytes per character of input.
    audio = b"FAKEAUDIO" + b"\x00" * (16 * len(text))
    if body.get("stream_format") == "sse":
        return _speech_events(body, text, audio, _directives([text]))
    return Response(
        audio,
        media_type=_AUDIO_TYPES.get(response_format, "application/octet-stream"),
        headers={"x-fake-upstream": NAME},
    )


# A speech model's audio tokens per character of input when no directive says otherwise: the
# fake's stand-in for about 1,250 tokens a minute of speech at 15 characters a second.
SPEECH_AUDIO_TOKENS_PER_CHARACTER = 2


def _speech_events(
    body: dict[str, Any], text: str, audio: bytes, directives: dict[str, str]
) -> StreamingResponse:
    """OpenAI's `stream_format: "sse"` answer: `speech.audio.delta` events carrying base64
    audio, then `speech.audio.done` with the usage the provider bills (text input tokens,
    audio output tokens)."""
    instructions = body.get("instructions")
    spoken = len(text) + (len(instructions) if isinstance(instructions, str) else 0)
    prompt = prompt_tokens(spoken)
    output = int(directives.get("audio_out", SPEECH_AUDIO_TOKENS_PER_CHARACTER * len(text)))
    cut_after = int(directives["cut_after"]) if "cut_after" in directives else None

    async def events() -> AsyncIterator[bytes]:
        for n, start in enumerate(range(0, len(audio), 4096)):
            if cut_after is not None and n >= cut_after:
                raise ConnectionAbortedError("the fake upstream was asked to cut the stream")
            piece = base64.b64encode(audio[start : start + 4096]).decode()
            yield _sse({"type": "speech.audio.delta", "audio": piece})
        usage = {"input_tokens": prompt, "output_tokens": output, "total_tokens": prompt + output}
        if "no_usage" not in directives:
            yield _sse({"type": "speech.audio.done", "usage": usage})

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"x-fake-upstream": NAME}
    )


async def models(_request: Request) -> Response:
    return JSONResponse(
        {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "owned_by": NAME}]}
    )


def create_fake_upstream(
    latency_seconds: float = 0.0,
    default_output_tokens: int = DEFAULT_OUTPUT_TOKENS,
    keep_seen: bool = False,
) -> Starlette:
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
            Route("/v1/audio/speech", speech, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )
    app.state.fake = FakeState(latency_seconds, default_output_tokens, keep_seen=keep_seen)
    return app


def serve(host: str, port: int, latency_ms: float, output_tokens: int) -> int:
    import uvicorn

    print(
        f"{NAME}: a local stand-in for OpenAI-compatible providers on http://{host}:{port}/v1 "
        "(nothing is forwarded anywhere, nothing is billed)",
        flush=True,
    )
    uvicorn.run(
        create_fake_upstream(latency_ms / 1000, output_tokens),
        host=host,
        port=port,
        log_level="warning",
    )
    return 0


DEMO_PROVIDERS = ("openai", "anthropic", "google", "mistral")


def upstream_environment(url: str) -> dict[str, str]:
    """CRABGLAMP_UPSTREAM_<PROVIDER>_URL for every provider of the catalog, all pointing here."""
    return {f"CRABGLAMP_UPSTREAM_{p.upper()}_URL": f"{url}/v1" for p in DEMO_PROVIDERS}


def start_in_thread(host: str = "127.0.0.1", port: int = 0) -> str:
    """Serve the fake on a daemon thread of this process (the demo's upstream); returns its URL."""
    import socket
    import threading

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_fake_upstream(), log_level="warning", access_log=False)
    )
    # Off the main thread uvicorn leaves signals alone; the daemon thread dies with the process.
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=NAME, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake upstream did not start")
        time.sleep(0.01)
    return f"http://{host}:{bound_port}"
