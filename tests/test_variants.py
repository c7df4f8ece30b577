"""Every registered variant passes the shared battery (parametrised over the registry: none escapes)."""
import pytest

import vaelab
from battery import CHECKS, check_save_load


@pytest.mark.parametrize("name", vaelab.variants())
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.replace("check_", ""))
def test_battery(name, check):
    check(name)


@pytest.mark.parametrize("name", vaelab.variants())
def test_save_load_round_trip(name, tmp_path):
    check_save_load(name, tmp_path)
