"""The client's options, resolved and checked before any I/O (kirim_async._config)."""

from __future__ import annotations

import math

import pytest

from kirim_async import InvalidParameterError, RetryPolicy
from kirim_async._config import (
    DEFAULT_BASE_URL,
    TOKEN_ENV,
    CallOptions,
    ClientConfig,
    environment_proxy,
    masked,
    resolve_config,
)

from .conftest import PROXY_VARIABLES

TOKEN = "sk_config_secret_0123"
PROXY_PASSWORD = "pr0xy_SECRET_9c1e"


def resolve(**given: object) -> ClientConfig:
    options: dict[str, object] = {
        "token": None,
        "base_url": None,
        "allow_insecure_http": False,
        "retry": RetryPolicy(),
    }
    options.update(given)
    return resolve_config(**options)  # type: ignore[arg-type]


class TestResolution:
    def test_the_token_and_base_url_come_from_the_environment_else_defaults(self) -> None:
        config = resolve(environ={TOKEN_ENV: TOKEN})
        assert config.token == TOKEN
        assert config.base_url == DEFAULT_BASE_URL

    def test_an_argument_wins_over_the_environment(self) -> None:
        config = resolve(
            token=TOKEN, base_url="http://127.0.0.1:9/v1/", environ={TOKEN_ENV: "x" * 20}
        )
        assert config.token == TOKEN
        assert config.base_url == "http://127.0.0.1:9/v1"

    def test_a_missing_token_names_the_variable_and_nothing_else(self) -> None:
        with pytest.raises(InvalidParameterError, match=TOKEN_ENV) as info:
            resolve(environ={})
        assert info.value.field == "token"

    def test_plain_http_beyond_loopback_is_refused_unless_allowed(self) -> None:
        with pytest.raises(InvalidParameterError):
            resolve(token=TOKEN, base_url="http://kirim.internal/v1", environ={})
        config = resolve(
            token=TOKEN, base_url="http://kirim.internal/v1", allow_insecure_http=True, environ={}
        )
        assert config.base_url == "http://kirim.internal/v1"

    def test_allow_insecure_http_must_be_a_bool(self) -> None:
        with pytest.raises(InvalidParameterError, match="True or False"):
            resolve(token=TOKEN, allow_insecure_http="no", environ={})

    def test_credentials_in_a_url_are_masked(self) -> None:
        shown = str(masked(f"http://user:{PROXY_PASSWORD}@proxy.corp:3128"))
        assert PROXY_PASSWORD not in shown
        assert "proxy.corp:3128" in shown


class TestCallOptions:
    def test_overrides_left_out_are_the_policy_s(self) -> None:
        options = CallOptions(timeout=5, deadline=None)
        assert (options.max_retries, options.max_rate_limit_wait) == (None, None)

    def test_a_call_may_wait_out_429s_without_a_limit_of_its_own(self) -> None:
        assert CallOptions(timeout=5, deadline=None, max_rate_limit_wait=math.inf)

    @pytest.mark.parametrize(
        ("field", "value"),
        [("timeout", 0), ("deadline", -1), ("max_retries", -1), ("max_rate_limit_wait", -1)],
    )
    def test_an_out_of_range_option_names_its_field(self, field: str, value: float) -> None:
        given: dict[str, float | None] = {"timeout": 5, "deadline": None, field: value}
        with pytest.raises(InvalidParameterError) as info:
            CallOptions(**given)  # type: ignore[arg-type]
        assert info.value.field == field


class TestEnvironmentProxy:
    """The CLI's proxy from the environment, read as curl, pip and urllib read it."""

    @pytest.fixture(autouse=True)
    def _no_proxy_variables(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in PROXY_VARIABLES:
            monkeypatch.delenv(name, raising=False)
            monkeypatch.delenv(name.lower(), raising=False)

    def test_https_proxy_for_an_https_url(self, monkeypatch: pytest.MonkeyPatch) -> None:
        assert environment_proxy("https://api.kirim.chat/v1") is None
        monkeypatch.setenv("HTTPS_PROXY", "http://kirim:pw@proxy.corp:3128")
        monkeypatch.setenv("HTTP_PROXY", "http://plain.corp:8080")
        assert environment_proxy("https://api.kirim.chat/v1") == "http://kirim:pw@proxy.corp:3128"
        assert environment_proxy("http://kirim.internal/v1") == "http://plain.corp:8080"

    def test_lower_case_and_a_bare_address(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("https_proxy", "proxy.corp:3128")
        assert environment_proxy("https://api.kirim.chat/v1") == "http://proxy.corp:3128"

    @pytest.mark.parametrize(
        "no_proxy", ["example.org,kirim.chat", "example.org, .kirim.chat", "api.kirim.chat", "*"]
    )
    def test_no_proxy_names_the_host(self, monkeypatch: pytest.MonkeyPatch, no_proxy: str) -> None:
        monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
        monkeypatch.setenv("NO_PROXY", no_proxy)
        assert environment_proxy("https://api.kirim.chat/v1") is None

    @pytest.mark.parametrize(
        "url", ["http://127.0.0.1:8080/v1", "http://localhost:8080/v1", "http://[::1]:80/v1"]
    )
    def test_a_loopback_host_is_reached_directly(
        self, monkeypatch: pytest.MonkeyPatch, url: str
    ) -> None:
        monkeypatch.setenv("HTTP_PROXY", "http://proxy.corp:3128")
        assert environment_proxy(url) is None

    def test_a_bad_value_names_the_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("HTTPS_PROXY", f"socks5://kirim:{PROXY_PASSWORD}@proxy.corp:1080")
        with pytest.raises(InvalidParameterError) as info:
            environment_proxy("https://api.kirim.chat/v1")
        assert info.value.field == "HTTPS_PROXY"
        assert PROXY_PASSWORD not in str(info.value)
