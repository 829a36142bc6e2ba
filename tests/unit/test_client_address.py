"""Who the public lookup counts a request against (core.runtime.proxies), and the limiter's
own rules: a sliding window per client, least recently seen clients forgotten first."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.core.runtime.proxies import TrustedProxies, parse_networks
from services.core.runtime.settings import Settings
from services.intake.public_lookup import SlidingWindowLimiter

PROXIES = TrustedProxies(parse_networks("10.0.0.0/8, 192.0.2.7, ::1"))


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # An untrusted peer is the client, whatever it claims.
        ("203.0.113.9", ["1.1.1.1"], "203.0.113.9"),
        ("203.0.113.9", [], "203.0.113.9"),
        # Behind a trusted proxy: the right-most address it did not write itself.
        ("10.0.0.5", ["198.51.100.4"], "198.51.100.4"),
        ("10.0.0.5", ["6.6.6.6, 198.51.100.4"], "198.51.100.4"),  # 6.6.6.6: the client's lie
        ("10.0.0.5", ["6.6.6.6", "198.51.100.4, 10.9.9.9"], "198.51.100.4"),  # two headers
        ("192.0.2.7", ["198.51.100.4, 10.1.1.1, 10.0.0.2"], "198.51.100.4"),  # proxy chain
        ("::1", ["2001:db8::5"], "2001:db8::5"),
        ("::ffff:10.0.0.5", ["198.51.100.4"], "198.51.100.4"),  # dual-stack socket
        # Nothing but proxies: the request began among them.
        ("10.0.0.5", ["10.0.0.6"], "10.0.0.6"),
        ("10.0.0.5", [], "10.0.0.5"),
        ("10.0.0.5", [" , "], "10.0.0.5"),
        (None, ["198.51.100.4"], "unknown"),
    ],
)
def test_the_client_is_the_right_most_untrusted_address(
    peer: str | None, forwarded: list[str], client: str
) -> None:
    assert PROXIES.client_of(peer, forwarded) == client


def test_by_default_no_proxy_is_trusted() -> None:
    proxies = Settings().proxies
    assert proxies.client_of("127.0.0.1", ["198.51.100.4"]) == "127.0.0.1"
    assert proxies.client_of("10.0.0.5", ["198.51.100.4"]) == "10.0.0.5"


def test_the_setting_names_a_bad_entry() -> None:
    assert Settings(trusted_proxies=" 10.0.0.0/8 ,, 2001:db8::/32 ").proxies.trusts("10.2.3.4")
    with pytest.raises(ValidationError, match="MOTCUA_TRUSTED_PROXIES: 'proxy.lan'"):
        Settings(trusted_proxies="10.0.0.1,proxy.lan")


class Monotonic:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def test_a_refused_call_says_when_the_next_is_allowed() -> None:
    clock = Monotonic()
    limiter = SlidingWindowLimiter(limit=2, window_seconds=60, monotonic=clock)
    assert limiter.wait_for("a") == 0
    clock.now += 10
    assert limiter.wait_for("a") == 0
    clock.now += 5
    assert limiter.wait_for("a") == pytest.approx(45)  # the first call leaves the window
    assert limiter.wait_for("b") == 0  # another client has its own window
    clock.now += 45
    assert limiter.wait_for("a") == 0
    assert limiter.wait_for("a") == pytest.approx(10)


def test_memory_is_bounded_by_forgetting_the_quietest_client_only() -> None:
    clock = Monotonic()
    limiter = SlidingWindowLimiter(limit=3, window_seconds=60, max_clients=100, monotonic=clock)
    for _ in range(3):
        assert limiter.wait_for("busy") == 0
    for n in range(1000):  # a flood of new addresses
        limiter.wait_for(f"flood-{n}")
        if n % 50 == 0:
            assert limiter.wait_for("busy") > 0  # still limited: seen recently, so kept
        assert len(limiter) <= 100
    assert limiter.wait_for("flood-0") == 0  # forgotten long ago: starts afresh
