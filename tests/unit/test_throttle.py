"""Failed attempts per client address in one-minute windows (time handed in, never slept)."""

from __future__ import annotations

from ledger.application.throttle import FailureLimiter
from ledger.entrypoints.http.abuse import ClientAddresses, display_prefix


def test_an_address_is_refused_once_its_window_holds_the_limit() -> None:
    limiter = FailureLimiter(3)
    for second in (0.0, 10.0):
        limiter.failed("10.0.0.1", second)
        assert limiter.retry_after("10.0.0.1", second) is None
    limiter.failed("10.0.0.1", 20.0)
    assert limiter.retry_after("10.0.0.1", 20.0) == 40  # the window opened at 0
    assert limiter.retry_after("10.0.0.1", 59.2) == 1  # whole seconds, rounded up
    assert limiter.retry_after("10.0.0.1", 60.0) is None  # the minute has passed


def test_other_addresses_are_not_affected() -> None:
    limiter = FailureLimiter(1)
    limiter.failed("10.0.0.1", 0.0)
    assert limiter.retry_after("10.0.0.1", 1.0) == 59
    assert limiter.retry_after("10.0.0.2", 1.0) is None


def test_a_failure_after_the_window_opens_a_new_one() -> None:
    limiter = FailureLimiter(2)
    limiter.failed("a", 0.0)
    limiter.failed("a", 61.0)  # the first window has passed: this one starts at 61
    assert limiter.retry_after("a", 62.0) is None
    limiter.failed("a", 62.0)
    assert limiter.retry_after("a", 62.0) == 59


def test_a_limit_of_zero_never_refuses() -> None:
    limiter = FailureLimiter(0)
    for _ in range(1000):
        limiter.failed("a", 0.0)
    assert limiter.retry_after("a", 0.0) is None
    assert len(limiter) == 0


def test_memory_is_bounded_dropping_passed_windows_then_the_oldest() -> None:
    limiter = FailureLimiter(1, max_addresses=3)
    for i, address in enumerate(("a", "b", "c")):
        limiter.failed(address, float(i))
    limiter.failed("d", 10.0)  # no window has passed: the oldest ("a") goes
    assert len(limiter) == 3
    assert limiter.retry_after("a", 10.0) is None
    assert limiter.retry_after("b", 10.0) == 51
    limiter.failed("e", 100.0)  # every window has passed: all dropped
    assert len(limiter) == 1


def scope(client: str | None, headers: dict[str, str] | None = None) -> dict[str, object]:
    return {
        "type": "http",
        "client": (client, 1234) if client else None,
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }


def test_the_client_address_is_the_sockets_unless_a_proxy_header_is_trusted() -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.9, 198.51.100.1"}
    assert ClientAddresses()(scope("127.0.0.1", forwarded)) == "127.0.0.1"
    assert ClientAddresses("X-Forwarded-For")(scope("127.0.0.1", forwarded)) == "198.51.100.1"
    two_hops = ClientAddresses("X-Forwarded-For", hops=2)
    assert two_hops(scope("127.0.0.1", forwarded)) == "203.0.113.9"
    # fewer entries than trusted proxies: it did not come through them, the peer counts
    assert ClientAddresses("X-Forwarded-For", hops=3)(scope("127.0.0.1", forwarded)) == (
        "127.0.0.1"
    )
    assert ClientAddresses("X-Forwarded-For")(scope("127.0.0.1")) == "127.0.0.1"
    assert ClientAddresses()(scope(None)) == "unknown"


def test_only_a_token_shaped_display_prefix_is_ever_logged() -> None:
    assert display_prefix("mit_ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == "mit_ABCDEFGH"
    assert display_prefix("mit_ABC") is None  # never a whole (short, made-up) token
    assert display_prefix("mit_ABCDEFGHIJKLMNOPQ") is None
    assert display_prefix("not a token at all") is None
    assert display_prefix("mit_\n\x00") is None
    assert display_prefix(42) is None
