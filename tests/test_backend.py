"""Backend plumbing (linnet._backend) and the tolerance helpers (linnet.testing)."""

import math

import numpy as np
import pytest

import linnet as ln
from linnet import _backend as B
from linnet.testing import assert_close, rel_error, tolerances


def test_get_namespace_names_modules_and_defaults():
    """None and 'numpy' and the numpy module give the array-api-compat NumPy namespace; names map to modules."""
    assert B.get_namespace(None).__name__ == "array_api_compat.numpy"
    assert B.get_namespace("numpy") is B.get_namespace(np)
    strict = B.get_namespace("array_api_strict")
    assert strict.__name__ == "array_api_strict"
    assert B.get_namespace(strict) is strict
    assert B.is_numpy_namespace(B.get_namespace("numpy")) and B.is_numpy_namespace(np)
    assert not B.is_numpy_namespace(strict)
    assert {"numpy", "array_api_strict"} <= set(B.available_backends())


@pytest.mark.parametrize("bad", ["torch", "NumPy", "", 3, object()])
def test_unknown_backend_is_a_value_error_naming_xp(bad):
    """An unknown backend name or a non-namespace object raises ValueError naming `xp`."""
    with pytest.raises(ValueError, match="`xp`"):
        B.get_namespace(bad)
    with pytest.raises(ValueError, match="`xp`"):
        ln.init.gaussian((2, 2), xp=bad)


def test_namespace_from_arrays(xp):
    """namespace() takes the namespace of the arrays and skips None and Python scalars."""
    a = B.from_host(np.ones((2, 2)), xp)
    assert B.namespace(a, None, 1.0, 2) is B.namespace(a)
    assert B.namespace(a).__name__ == xp.__name__
    with pytest.raises(TypeError):
        B.namespace(np.ones(2), B.from_host(np.ones(2), B.get_namespace("array_api_strict")))


def test_resolve_dtype_and_dtype_name(xp):
    """resolve_dtype accepts None (float64), names and dtype objects; anything else raises naming `dtype`."""
    assert B.resolve_dtype(None, xp) == xp.float64
    assert B.resolve_dtype("float32", xp) == xp.float32
    assert B.resolve_dtype(xp.float32, xp) == xp.float32
    assert B.dtype_name(xp.float32) == "float32" and B.dtype_name(xp.float64) == "float64"
    for bad in ("float16", "int32", int, xp.int64):
        with pytest.raises(ValueError, match="`dtype`"):
            B.resolve_dtype(bad, xp)
    with pytest.raises(ValueError, match="float32 or float64"):
        B.dtype_name(xp.int64)
    assert B.resolve_dtype(np.float32, B.get_namespace("numpy")) == np.float32


def test_from_host_and_to_numpy_round_trip(xp, dtype_name):
    """from_host moves a NumPy array into xp with the dtype; to_numpy brings it back unchanged."""
    a = np.random.default_rng(0).standard_normal((3, 4))
    b = B.from_host(a, xp, dtype_name)
    assert b.dtype == getattr(xp, dtype_name) and tuple(b.shape) == (3, 4)
    back = B.to_numpy(b)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, a.astype(dtype_name))
    assert B.from_host(2.5, xp).dtype == xp.float64


def test_host_rng():
    """host_rng builds a Generator from an int or None and passes a Generator through; bad seeds name `seed`."""
    g = np.random.default_rng(3)
    assert B.host_rng(g) is g
    assert B.host_rng(3).standard_normal() == np.random.default_rng(3).standard_normal()
    assert isinstance(B.host_rng(None), np.random.Generator)
    assert isinstance(B.host_rng(np.int64(2)), np.random.Generator)
    for bad in (-1, "a", 1.5, [1]):
        with pytest.raises(ValueError, match="`seed`"):
            B.host_rng(bad)


def test_tolerances_table():
    """tolerances(dtype) = (4 sqrt(eps), 100 eps) for float32 and float64."""
    for name in ("float32", "float64"):
        eps = float(np.finfo(name).eps)
        assert tolerances(np.dtype(name)) == (4 * math.sqrt(eps), 100 * eps)


def test_assert_close_checks_values_dtype_and_shape(xp):
    """assert_close passes on equal arrays and fails on a value, shape, dtype or namespace mismatch (a host
    float64 reference must say so: check_dtype=False, check_namespace=False)."""
    a = B.from_host(np.array([1.0, 2.0]), xp)
    assert_close(a, a)
    with pytest.raises(AssertionError):
        assert_close(a, B.from_host(np.array([1.0, 2.1]), xp))
    f32 = B.from_host(np.array([1.0, 2.0]), xp, "float32")
    with pytest.raises(AssertionError, match="dtype"):
        assert_close(a, f32)
    with pytest.raises(AssertionError, match="dtype"):
        assert_close(f32, np.array([1.0, 2.0]))
    assert_close(f32, np.array([1.0, 2.0]), check_dtype=False, check_namespace=False)
    if not isinstance(a, np.ndarray):
        with pytest.raises(AssertionError, match="namespace"):
            assert_close(a, np.array([1.0, 2.0]))
    with pytest.raises(AssertionError):
        assert_close(a, B.from_host(np.array([1.0, 2.0, 3.0]), xp))
    assert rel_error(a, B.from_host(np.array([0.0, 0.0]), xp)) > 1e300
    assert abs(rel_error(B.from_host(np.array([3.0, 4.0]), xp), np.array([3.0, 0.0])) - 4 / 3) < 1e-15


def test_strategies_without_hypothesis_says_what_to_install():
    """Importing linnet.strategies where hypothesis is missing raises ImportError naming the `test` extra."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['hypothesis'] = None\n"  # None in sys.modules makes `import hypothesis` fail
        "try:\n    import linnet.strategies\nexcept ImportError as e:\n    print('IMPORTERROR', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "IMPORTERROR" in out and "test" in out and "pip install" in out, out
