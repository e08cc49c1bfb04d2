"""Interpreting responses into a model or a typed error."""

from __future__ import annotations

import json

import pytest

import knock_async as ka
from knock_async._responses import error_from_response, operation_from_response
from tests._support import knock_error, sample


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, ka.BadRequestError),
        (401, ka.AuthenticationError),
        (403, ka.PermissionDeniedError),
        (404, ka.NotFoundError),
        (409, ka.APIStatusError),
        (422, ka.UnprocessableEntityError),
        (429, ka.RateLimitError),
        (500, ka.InternalServerError),
        (502, ka.InternalServerError),
        (503, ka.InternalServerError),
    ],
)
def test_each_status_maps_to_its_error(status: int, cls: type[ka.APIError]) -> None:
    """Each error status becomes its APIError subclass carrying Knock's code, type, message."""
    body = json.dumps(knock_error(status, "some_code", "Something went wrong")).encode()
    error = error_from_response(status, {"x-request-id": "req_42"}, body)
    assert type(error) is cls
    assert (error.status, error.code, error.type, error.message, error.request_id) == (
        status,
        "some_code",
        "api_error",
        "Something went wrong",
        "req_42",
    )
    assert str(error) == (
        f"HTTP {status} some_code (api_error): Something went wrong (request_id=req_42)"
    )


def test_invalid_params_sample() -> None:
    """Knock's 422 body gives code invalid_params and its message."""
    body = json.dumps(sample("error_invalid_params")).encode()
    error = error_from_response(422, {}, body)
    assert isinstance(error, ka.UnprocessableEntityError)
    assert error.code == "invalid_params"
    assert error.type == "invalid_request_error"
    assert error.message == "archived is invalid"


def test_unrouted_path_shape() -> None:
    """The {"errors": {"detail": ...}} shape of an unrouted path gives its detail as message."""
    error = error_from_response(404, {}, json.dumps(sample("error_unrouted")).encode())
    assert isinstance(error, ka.NotFoundError)
    assert error.message == "404 Not Found"
    assert error.code is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (b"", "Knock answered HTTP 502 with no error message"),
        (b"[1]", "Knock answered HTTP 502 with no error message"),
        (b'{"code": 5, "message": null}', "Knock answered HTTP 502 with no error message"),
        (b"x" * 1000, "x" * 200),
    ],
)
def test_error_bodies_that_are_not_knocks(body: bytes, message: str) -> None:
    """A proxy's HTML or an empty body still gives a typed error with a useful message."""
    error = error_from_response(502, {}, body)
    assert isinstance(error, ka.InternalServerError)
    assert error.message == message


def test_rate_limit_carries_retry_after() -> None:
    """A 429 carries the server's Retry-After hint, or None when there is none (Knock's norm)."""
    error = error_from_response(429, {"retry-after": "2"}, b"")
    assert isinstance(error, ka.RateLimitError)
    assert error.retry_after == 2.0
    bare = error_from_response(429, {}, b"")
    assert isinstance(bare, ka.RateLimitError)
    assert bare.retry_after is None


def test_success_parses_and_bad_success_is_typed() -> None:
    """A 200 gives the model; a 200 with a broken body gives ResponseValidationError."""
    op = operation_from_response(200, {}, json.dumps(sample("bulk_operation_queued")).encode())
    assert op.status is ka.BulkOperationStatus.QUEUED
    with pytest.raises(ka.ResponseValidationError) as info:
        operation_from_response(200, {"x-request-id": "req_7"}, b"<html>")
    assert info.value.status == 200
    assert info.value.request_id == "req_7"


def test_error_status_with_valid_operation_body_is_still_an_error() -> None:
    """The status decides: a 500 is an error whatever its body looks like."""
    with pytest.raises(ka.InternalServerError):
        operation_from_response(500, {}, json.dumps(sample("bulk_operation_queued")).encode())
