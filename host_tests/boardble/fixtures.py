"""pytest fixtures for the board-adapter tests: a Bumble world and the SMP peripheral."""

import pytest

from .smp_peripheral import SMPPeripheral
from .world import World


@pytest.fixture
def world():
    w = World()
    yield w
    w.close()


@pytest.fixture
def nrf(world):
    p = SMPPeripheral(world)
    yield p
    p.close()
