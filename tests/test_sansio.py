from __future__ import annotations

import datetime
import email.utils
import json
from typing import Any

import pytest
from multidict import CIMultiDict

from kirim_async import (
    APIStatusError,
    AuthenticationError,
    DuplicateLabelError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from kirim_async._sansio import (
    build_create_label,
    build_headers,
    decipher_label,
    error_from_response,
    parse_retry_after,
    user_agent,
)
from kirim_async.models import CreateLabel

from .conftest import label_body

NOW = 1_700_000_000.0


def error_body(code: str = "some_code", param: str | None = None, **extra: Any) -> bytes:
    error: dict[str, Any] = {"type": "invalid_request_error", "code": code, "message": "Nope."}
    if param is not None:
        error["param"] = param
    error["request_id"] = "req_e"
    error.update(extra)
    return json.dumps({"error": error}).encode()


class TestBuildRequest:
    """Requests carry the documented method, path, headers and body."""

    def test_create_label(self) -> None:
        request = build_create_label(
            "https://api.kirim.chat/v1", CreateLabel(name="bug", color="red")
        )
        assert (request.method, request.url) == ("POST", "https://api.kirim.chat/v1/labels")
        assert json.loads(request.body) == {"name": "bug", "color": "red"}
        assert request.headers == {}  # the common headers are the transport's

    def test_common_headers(self) -> None:
        headers = build_headers("tok", "agent/1")
        assert headers["Authorization"] == "Bearer tok"
        assert headers["Content-Type"] == "application/json"
        assert headers["Accept"] == "application/json"
        assert headers["User-Agent"] == "agent/1"

    def test_user_agent_names_all_three_versions(self) -> None:
        agent = user_agent("3.99.0")
        assert agent.startswith("kirim-async/")
        assert " aiohttp/3.99.0 python/3." in agent


class TestParseRetryAfter:
    """Retry-After is delta-seconds (maybe fractional) or an HTTP-date (RFC 9110 10.2.3)."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("3", 3.0),
            ("0", 0.0),
            ("0.25", 0.25),
            (" 1.5 ", 1.5),
            (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
            (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),
            (None, None),
            ("", None),
            ("soon", None),
            ("-1", None),
            ("inf", None),
            ("nan", None),
            ("Mon, 99 Foo 2025 99:99:99 GMT", None),
        ],
    )
    def test_parses(self, value: str | None, expected: float | None) -> None:
        assert parse_retry_after(value, NOW) == expected

    @pytest.mark.parametrize(
        "layout",
        [
            "%a, %d %b %Y %H:%M:%S GMT",  # IMF-fixdate, the preferred format
            "%A, %d-%b-%y %H:%M:%S GMT",  # obsolete RFC 850
            "%a %b %d %H:%M:%S %Y",  # asctime: UTC, though it names no zone
        ],
    )
    def test_every_http_date_format_is_read(self, layout: str) -> None:
        # RFC 9110 5.6.7: a recipient must accept all three; asctime's was ignored.
        moment = datetime.datetime.fromtimestamp(NOW + 30, tz=datetime.timezone.utc)
        assert parse_retry_after(moment.strftime(layout), NOW) == 30.0

    @pytest.mark.parametrize(
        ("value", "date", "expected"),
        [
            # The server's clock against the server's clock: local skew does not count.
            (email.utils.formatdate(NOW + 3630, usegmt=True), NOW + 3600, 30.0),
            # A date already past by the server's own clock: no wait.
            (email.utils.formatdate(NOW - 5, usegmt=True), NOW, 0.0),
            # A Date that is not a date: the local clock, as without one.
            (email.utils.formatdate(NOW + 30, usegmt=True), None, 30.0),
            ("Fri, 31 Dec 9999 23:59:59 GMT", NOW, pytest.approx(253402300799.0 - NOW)),
        ],
    )
    def test_a_date_is_read_against_the_answers_date(
        self, value: str, date: float | None, expected: object
    ) -> None:
        header = "not a date" if date is None else email.utils.formatdate(date, usegmt=True)
        assert parse_retry_after(value, NOW, header) == expected


class TestDecipher:
    """Any 2xx is a success; the status picks the error class; code and param refine it."""

    @pytest.mark.parametrize("status", [200, 201, 202])
    def test_any_2xx_is_success(self, status: int) -> None:
        label = decipher_label(status, "OK", {}, json.dumps(label_body()).encode(), NOW)
        assert label.name == "bug"

    @pytest.mark.parametrize(
        ("body", "reason"),
        [(b"<html>", "not JSON"), (b"", "not JSON"), (b'{"data": 1}', r"\$\.data")],
    )
    def test_bad_success_body_is_malformed(self, body: bytes, reason: str) -> None:
        with pytest.raises(MalformedResponseError, match=reason) as info:
            decipher_label(201, "Created", {}, body, NOW)
        assert info.value.status == 201

    @pytest.mark.parametrize(
        ("status", "body", "cls"),
        [
            (400, error_body(), InvalidRequestError),
            (422, error_body(), InvalidRequestError),
            (400, error_body("invalid_field_value", "name"), DuplicateLabelError),
            (422, error_body("invalid_field_value", "name"), DuplicateLabelError),
            (400, error_body("invalid_field_value", "team_id"), InvalidRequestError),
            (400, error_body("string_too_long", "name"), InvalidRequestError),
            (409, error_body("invalid_field_value", "name"), APIStatusError),
            (401, error_body(), AuthenticationError),
            (403, error_body(), PermissionDeniedError),
            (404, b"404: Not Found", NotFoundError),
            (429, error_body(), RateLimitError),
            (500, error_body(), ServerError),
            (502, b"<html>bad gateway</html>", ServerError),
            (503, b"", ServerError),
            (504, b"{truncated", ServerError),
            (599, b"", ServerError),
            (302, b"", APIStatusError),
            (418, b"", APIStatusError),
        ],
    )
    def test_status_picks_class(self, status: int, body: bytes, cls: type[Exception]) -> None:
        with pytest.raises(APIStatusError) as info:
            decipher_label(status, "Reason", {}, body, NOW)
        assert type(info.value) is cls
        assert info.value.status == status

    def test_json_error_fields(self) -> None:
        err = error_from_response(
            400, "Bad Request", {"X-Other": "1"}, error_body("string_too_long", "name"), NOW
        )
        assert (err.code, err.type, err.param, err.message, err.request_id) == (
            "string_too_long",
            "invalid_request_error",
            "name",
            "Nope.",
            "req_e",
        )
        assert err.body["error"]["code"] == "string_too_long"
        assert err.headers == {"X-Other": "1"}
        assert str(err) == "400 string_too_long: Nope. (param=name, request_id=req_e)"
        assert "\n" not in str(err)

    def test_non_json_error_keeps_an_excerpt(self) -> None:
        html = b"<html><body>" + b"x" * 500 + b"</body></html>"
        err = error_from_response(502, "Bad Gateway", {}, html, NOW)
        assert err.code is None
        assert err.body.startswith("<html><body>")
        assert len(err.body) < 300
        assert str(err).startswith("502: Bad Gateway; body: '<html><body>")

    def test_empty_error_body(self) -> None:
        err = error_from_response(503, "Service Unavailable", {}, b"", NOW)
        assert str(err) == "503: Service Unavailable; empty body"

    @pytest.mark.parametrize(
        "body",
        [b'{"error": "string"}', b'{"error": {"code": 5, "message": ["x"]}}', b"[1, 2]", b"null"],
    )
    def test_odd_json_error_shapes_do_not_crash(self, body: bytes) -> None:
        err = error_from_response(400, "Bad Request", {}, body, NOW)
        assert type(err) is InvalidRequestError
        assert err.code is None

    def test_request_id_falls_back_to_body_then_header(self) -> None:
        body = json.dumps({"error": {"code": "x"}, "request_id": "req_top"}).encode()
        assert error_from_response(500, "", {}, body, NOW).request_id == "req_top"
        header = {"X-Request-Id": "req_hdr"}
        assert error_from_response(500, "", header, b"", NOW).request_id == "req_hdr"

    def test_rate_limit_carries_retry_after(self) -> None:
        err = error_from_response(429, "", {"Retry-After": "1.5"}, error_body(), NOW)
        assert isinstance(err, RateLimitError)
        assert err.retry_after == 1.5
        assert "retry_after=1.5" in str(err)

    def test_a_rate_limit_carries_the_reset_its_hints_name(self) -> None:
        # GitHub's primary limit: no Retry-After, the quota spent, the window's end as a
        # Unix time. The wait is the answer's to name, so it travels with the error.
        spent = {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": str(int(NOW) + 3600),
        }
        err = error_from_response(429, "", CIMultiDict(spent), error_body(), NOW)
        assert isinstance(err, RateLimitError)
        assert (err.retry_after, err.reset_after, err.named_wait) == (None, 3600.0, 3600.0)
        assert "reset_after=3600.0" in str(err)
        both = CIMultiDict({**spent, "Retry-After": "2"})
        err = error_from_response(429, "", both, error_body(), NOW)
        assert (err.reset_after, err.named_wait) == (3600.0, 2.0)  # Retry-After wins
        left = CIMultiDict({**spent, "x-ratelimit-remaining": "3"})
        assert error_from_response(429, "", left, b"", NOW).named_wait is None  # not spent
        # Only a 429 reads them: a 503 with the same headers is a fault.
        assert error_from_response(503, "", CIMultiDict(spent), b"", NOW).reset_after is None

    def test_redirect_says_it_is_not_followed(self) -> None:
        err = error_from_response(301, "Moved Permanently", {"Location": "https://x"}, b"", NOW)
        assert "redirects are not followed" in str(err)

    def test_a_404_not_from_the_api_points_at_the_base_url(self) -> None:
        # Was "404: Not Found; body: '404: Not Found'" for every row of a job whose base
        # URL lacked /v1, with no word of where to look.
        err = error_from_response(404, "Not Found", {}, b"404: Not Found", NOW)
        assert isinstance(err, NotFoundError)
        assert "the base URL has no /labels endpoint (the API's ends in /v1)" in str(err)
        assert "body: '404: Not Found'" in str(err)

    def test_a_404_in_the_api_error_format_keeps_its_message(self) -> None:
        body = json.dumps({"error": {"code": "team_not_found", "message": "No team."}}).encode()
        err = error_from_response(404, "Not Found", {}, body, NOW)
        assert err.message == "No team."
