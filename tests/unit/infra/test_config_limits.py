"""SPEC §12's image limits are configuration: ``CALIB_MAX_IMAGE_PIXELS`` and
``CALIB_MAX_HEADER_BYTES``, read once, validated, handed to the registry and gateway."""

from __future__ import annotations

import msgspec
import pytest

from calib_core.limits import ImageLimits
from calib_infra.config import load_config


def test_the_defaults_are_the_specs():
    config = load_config({})
    assert (config.max_image_pixels, config.max_header_bytes) == (250_000_000, 1024 * 1024)
    assert config.image_limits == ImageLimits()


def test_the_limits_come_from_the_environment():
    config = load_config({"CALIB_MAX_IMAGE_PIXELS": "1000", "CALIB_MAX_HEADER_BYTES": "5760"})
    assert config.image_limits == ImageLimits(max_pixels=1000, max_header_bytes=5760)


@pytest.mark.parametrize("name", ["CALIB_MAX_IMAGE_PIXELS", "CALIB_MAX_HEADER_BYTES"])
@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_a_limit_that_is_not_a_positive_integer_fails_loudly(name, value):
    with pytest.raises(msgspec.ValidationError):
        load_config({name: value})
