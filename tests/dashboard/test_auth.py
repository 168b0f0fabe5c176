"""Dashboard login: one-time codes, the token form, signed sessions that only read."""

from __future__ import annotations

from ratline.dashboard.auth import CODE_TTL_S, SESSION_TTL_S, DashboardAuth


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_login_code_works_once_and_expires() -> None:
    clock = Clock()
    auth = DashboardAuth("s3cret", clock)
    code = auth.new_code()
    assert auth.redeem(code) and not auth.redeem(code)
    late = auth.new_code()
    clock.now += CODE_TTL_S + 1
    assert not auth.redeem(late) and not auth.redeem("made-up")


def test_sessions_are_signed_with_the_admin_token_and_expire() -> None:
    clock = Clock()
    auth = DashboardAuth("s3cret", clock)
    session = auth.new_session()
    assert auth.session_ok(session)
    assert DashboardAuth("s3cret", clock).session_ok(session)  # a restarted control plane
    assert not DashboardAuth("another-token", clock).session_ok(session)
    nonce, expiry, mac = session.split(".")
    assert not auth.session_ok(f"{nonce}.{int(expiry) + 9999}.{mac}")  # tampered expiry
    assert not auth.session_ok(None) and not auth.session_ok("a.b")
    clock.now += SESSION_TTL_S + 1
    assert not auth.session_ok(session)


def test_the_token_form_checks_the_admin_token() -> None:
    auth = DashboardAuth("s3cret")
    assert auth.token_ok(" s3cret\n") and not auth.token_ok("s3cre") and not auth.token_ok("")
    assert not DashboardAuth(None).token_ok("")
