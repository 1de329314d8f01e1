"""The public surface of runtime_telemetry."""

from tests.public_api import assert_public_api


def test_public_api() -> None:
    assert_public_api("runtime_telemetry", "runtime-telemetry")
