"""Shared fixtures: the ``xp`` backend fixture, dtypes, and hypothesis profiles.

Backends come from ``LINNET_BACKENDS`` (default ``numpy,array_api_strict``; add ``cupy`` on a GPU machine).
Hypothesis uses the ``deterministic`` profile under CI (``CI`` set) and by default; ``explore`` for long local
runs (``HYPOTHESIS_PROFILE=explore``).
"""

import os

import pytest
from hypothesis import HealthCheck, settings

from linnet._backend import get_namespace

settings.register_profile(
    "deterministic",
    derandomize=True,
    deadline=None,
    max_examples=25,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("explore", deadline=None, max_examples=500, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

BACKENDS = [b.strip() for b in os.environ.get("LINNET_BACKENDS", "numpy,array_api_strict").split(",") if b.strip()]


@pytest.fixture(params=BACKENDS)
def xp(request):
    """An array namespace: each backend named in ``LINNET_BACKENDS``."""
    return get_namespace(request.param)


@pytest.fixture(params=["float64", "float32"])
def dtype_name(request):
    """A floating dtype by name."""
    return request.param


@pytest.fixture(params=["transposed", "natural"])
def layout(request, monkeypatch):
    """The NumPy quadratic kernel's layout, forced for every size: the transposed one of small matrices or the
    natural one of large matrices (linnet._fastpaths.natural), so each kernel test covers both on small nets."""
    from linnet._fastpaths import natural

    monkeypatch.setattr(natural, "NATURAL_MIN_DIM", 1 if request.param == "natural" else 10**9)
    return request.param


def pytest_collection_modifyitems(config, items):
    """With ``LINNET_FASTPATHS=0`` the tests of the fast paths themselves have nothing to test: skip them."""
    import linnet.backend

    if linnet.backend.fastpaths_enabled():
        return
    skip = pytest.mark.skip(reason="LINNET_FASTPATHS=0: the NumPy fast paths are off")
    for item in items:
        if "fastpath" in item.keywords:
            item.add_marker(skip)
