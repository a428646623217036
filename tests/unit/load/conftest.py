"""The calibration server (edgeinfer_validate.testserver) the CLI's tests use too."""

from tests.unit.validate.conftest import server, server_factory  # noqa: F401  (fixtures)
