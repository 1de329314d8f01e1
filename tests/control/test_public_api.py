"""The public surface of runtime_control."""

from tests.public_api import assert_public_api


def test_public_api() -> None:
    assert_public_api("runtime_control", "runtime-control")
