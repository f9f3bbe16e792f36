"""Estimates: the most a request can cost, which its reservation holds (CONTRACTS.md §1.4).

The request's body is checked here too, as far as its price depends on it.
"""

from __future__ import annotations

from typing import Any

from crabglamp.money import mul_div_half_up
from crabglamp.prices import MILLION, STANDARD_TIERS, PriceBook, PriceNotFound
from crabglamp.proxy.exchange import Exchange
from crabglamp.proxy.refusals import Refusal, bad

_IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})


def max_input_tokens(body_bytes: int, images: int = 0) -> int:
    """An upper bound of a request's input tokens. A token of a byte-level BPE tokenizer covers at
    least one byte of text, and the JSON request holds all of its text (plus some syntax), so the
    body's size bounds the text; an image costs at most 1,536 tokens at any detail level."""
    return body_bytes + 1_536 * images


def images_in(message: Any) -> int:
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        return 0
    return sum(
        1
        for part in message["content"]
        if isinstance(part, dict) and part.get("type") in _IMAGE_PARTS
    )


def estimate(exchange: Exchange, prices: PriceBook, default_max_output_tokens: int) -> int:
    """The most this request can cost (CONTRACTS.md §1.4)."""
    payload, now = exchange.payload, exchange.now
    try:
        if exchange.route == "speech":
            text = payload.get("input")
            if not isinstance(text, str) or not text:
                raise bad("input must be a non-empty string.", param="input")
            if prices.at(exchange.provider, exchange.model, now).kind != "voice":
                raise bad(f"`{exchange.model}` is not a voice model.", param="model")
            by_characters = prices.voice_cost(exchange.model, now, len(text))
            rates = prices.speech_token_rates(exchange.model, now)
            if rates is None:
                return by_characters
            # Billed by token when the answer reports them: the text's tokens are bounded by the
            # body, the audio's by its length (SPEECH_AUDIO_TOKENS_PER_CHARACTER).
            audio = SPEECH_AUDIO_TOKENS_PER_CHARACTER * len(text)
            by_tokens = max_input_tokens(len(exchange.body)) * rates.dearest_input
            by_tokens += audio * rates.dearest_output
            return max(by_characters, mul_div_half_up(by_tokens, 1, MILLION))
        tier = requested_tier(exchange, prices)
        if exchange.route == "embeddings":
            if "input" not in payload:
                raise bad("You must provide an input parameter.", param="input")
            return _dearest(exchange, prices, tier, max_input_tokens(len(exchange.body)), 0)
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            raise bad("messages must be a non-empty array.", param="messages")
        stream = payload.get("stream", False)
        if not isinstance(stream, bool):
            raise bad("stream must be true or false.", param="stream")
        exchange.stream = stream
        output = max_output(payload, default_max_output_tokens)
        choices = payload.get("n", 1)
        if choices is None:
            choices = 1
        if not isinstance(choices, int) or isinstance(choices, bool) or not 1 <= choices <= 128:
            raise bad("n must be an integer from 1 to 128.", param="n")
        images = sum(images_in(message) for message in messages)
        return _dearest(
            exchange, prices, tier, max_input_tokens(len(exchange.body), images), output * choices
        )
    except PriceNotFound as exc:
        raise Refusal(404, "model_not_found", str(exc), param="model") from None


# No model writes more than a few hundred thousand tokens in one answer, but clients send large
# values to mean "no limit" (and meet the cap, a 429). A billion keeps the estimate (tokens x n x
# the dearest price per token) far inside the 64-bit micro-cents of a reservation.
MAX_OUTPUT_TOKENS = 1_000_000_000


# A speech model billed by token (gpt-4o-mini-tts) writes about 1,250 audio tokens a minute,
# some 1.4 per character at a normal pace and under 6 at the slowest `speed` (0.25); 16 leaves
# room for instructions that slow it further, and keeps the reservation an upper bound.
SPEECH_AUDIO_TOKENS_PER_CHARACTER = 16


def requested_tier(exchange: Exchange, prices: PriceBook) -> str | None:
    """The service tier the request asks for, checked to have a price: a tier the catalog does
    not price for this model is refused before the provider is called."""
    tier = exchange.payload.get("service_tier")
    if tier is None or tier in STANDARD_TIERS:
        return None
    if not isinstance(tier, str):
        raise bad("service_tier must be a string.", param="service_tier")
    try:
        prices.rates(exchange.provider, exchange.model, exchange.now, tier)
    except PriceNotFound:
        raise bad(
            f"The service tier `{tier}` has no price for `{exchange.model}` in the catalog, so "
            "its spend cannot be capped; use the default tier or ask an administrator.",
            param="service_tier",
            code="service_tier_not_priced",
        ) from None
    exchange.requested_tier = tier
    return tier


def _dearest(
    exchange: Exchange, prices: PriceBook, tier: str | None, input_bound: int, output_bound: int
) -> int:
    """The bound priced as if every input token fell into its dearest category (a cache write
    can cost more than plain input) and every output token into the dearest output one, at the
    standard tier and the requested one, at the longest prompt's rates."""
    most = 0
    for at in {None, tier}:
        rates = prices.rates(exchange.provider, exchange.model, exchange.now, at)
        numerator = input_bound * rates.dearest_input + output_bound * rates.dearest_output
        most = max(most, mul_div_half_up(numerator, 1, MILLION))
    return most


def max_output(payload: dict[str, Any], default: int) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = payload.get(name)
        if value is None:
            continue
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not 1 <= value <= MAX_OUTPUT_TOKENS
        ):
            raise bad(f"{name} must be an integer from 1 to {MAX_OUTPUT_TOKENS:,}.", param=name)
        return value
    # Unknown: a request may then overshoot its reservation, by at most its own cost.
    return default
