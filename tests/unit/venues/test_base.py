"""What every venue session guarantees: any failure to parse or apply a message is a BadMessage."""

from __future__ import annotations

import pytest

from tapeline.domain.errors import BadMessage
from tapeline.venues import SESSIONS, make_session
from tapeline.venues.base import RestRequest

SYMBOLS = {"okx": ["BTC-USDT-SWAP"], "hyperliquid": ["BTC"]}
DEEP = "[" * 3000 + "]" * 3000
# the same deep value where each venue's router looks first
SHAPES = [
    DEEP,
    '{"data":%s}',
    '{"stream":"btcusdt@aggTrade","data":%s}',
    '{"topic":"publicTrade.BTCUSDT","data":%s}',
    '{"arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"data":%s}',
    '{"channel":"trades","data":%s}',
]


@pytest.mark.parametrize("venue", SESSIONS)
def test_a_frame_nested_thousands_deep_is_a_dead_letter_not_a_recursion_error(venue: str) -> None:
    session = make_session(venue, SYMBOLS.get(venue, ["BTCUSDT"]))
    for shape in SHAPES:
        payload = shape if shape is DEEP else shape % DEEP
        with pytest.raises(BadMessage) as caught:
            session.on_ws(payload.encode(), 1, None)
        assert not caught.value.unexpected, caught.value.reason
    for body in (DEEP, '{"result":%s,"symbols":%s,"data":%s,"universe":%s}' % ((DEEP,) * 4)):
        with pytest.raises(BadMessage) as caught:
            session.on_rest(session.startup().requests[0], body, 1)
        assert not caught.value.unexpected, caught.value.reason


@pytest.mark.parametrize("venue", SESSIONS)
def test_invalid_utf8_is_a_dead_letter(venue: str) -> None:
    session = make_session(venue, SYMBOLS.get(venue, ["BTCUSDT"]))
    with pytest.raises(BadMessage) as caught:
        session.on_ws(b'{"data":"\xff\xfe"}', 1, None)
    assert not caught.value.unexpected, caught.value.reason


def test_an_exception_no_parser_anticipated_is_an_unexpected_bad_message() -> None:
    session = make_session("binance-usdm", ["BTCUSDT"])

    def broken(*args: object) -> None:
        raise KeyError("oops")

    session._on_ws = broken  # type: ignore[method-assign]
    session._on_rest = broken  # type: ignore[method-assign]
    with pytest.raises(BadMessage) as caught:
        session.on_ws(b"{}", 1, None)
    assert (
        caught.value.unexpected
        and caught.value.reason == "binance-usdm: cannot handle websocket message: KeyError: 'oops'"
    )
    with pytest.raises(BadMessage) as caught:
        session.on_rest(RestRequest("instruments", "u"), b"{}", 1)
    assert caught.value.unexpected and "answer to instruments" in caught.value.reason
