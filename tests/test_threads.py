"""linnet's thread setting: validation, environment variable, explicit override, the default rule (no split
beside a threaded BLAS, a split only where a calibration shows a gain, cached), the BLAS cap while the pool
splits, and results bit for bit equal whatever the number of threads."""

import itertools

import numpy as np
import pytest

import linnet as ln
from linnet import train
from linnet._fastpaths import threads


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    """Every test starts from the default setting, no environment override and no cached choices."""
    monkeypatch.delenv("LINNET_NUM_THREADS", raising=False)
    ln.set_num_threads(None)
    threads.clear_plans()
    yield
    ln.set_num_threads(None)
    threads.clear_plans()


# ---- the setting ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True, 2.0])
def test_set_num_threads_rejects_what_is_not_a_positive_int(bad):
    with pytest.raises(ValueError, match=r"`n` must be a positive int or None, got"):
        ln.set_num_threads(bad)


@pytest.mark.parametrize("raw", ["0", "-2", "two", "1.5"])
def test_environment_variable_is_validated(monkeypatch, raw):
    monkeypatch.setenv("LINNET_NUM_THREADS", raw)
    with pytest.raises(ValueError, match=f"LINNET_NUM_THREADS must be a positive int, got '{raw}'"):
        threads.num_threads()


def test_function_overrides_environment_overrides_rule(monkeypatch):
    assert threads.explicit_threads() is None
    monkeypatch.setenv("LINNET_NUM_THREADS", "3")
    assert threads.explicit_threads() == 3 == threads.num_threads()
    ln.backend.set_num_threads(5)  # the same setting, public in linnet.backend too
    assert threads.explicit_threads() == 5
    ln.set_num_threads(None)
    monkeypatch.setenv("LINNET_NUM_THREADS", " ")
    assert threads.explicit_threads() is None and threads.num_threads() == threads.usable_cores()


def _never(n):
    raise AssertionError("no calibration expected")


def test_explicit_setting_is_used_without_calibration(monkeypatch):
    """An explicit setting wins even where the default rule would not split (large products), within n_max."""
    ln.set_num_threads(3)
    assert threads.pool_size("k", 8, 1e9, _never) == 3
    assert threads.pool_size("k", 2, 10.0, _never) == 2
    ln.set_num_threads(None)
    monkeypatch.setenv("LINNET_NUM_THREADS", "2")
    assert threads.pool_size("k", 8, 10.0, _never) == 2
    assert threads.plans() == {}


# ---- the default rule -------------------------------------------------------------------------------------------


def test_default_never_splits_beside_a_threaded_blas():
    assert threads.pool_size("k", 4, threads.BLAS_SERIAL_MNK + 1, _never) == 1
    assert threads.pool_size("k", 1, 1.0, _never) == 1


class _Clock:
    """A fake ``perf_counter``: each trial advances it by the time given for its thread count."""

    def __init__(self, cost):
        self.t, self.cost, self.calls = 0.0, cost, []

    def __call__(self):
        return self.t

    def trial(self, n):
        self.calls.append(n)
        self.t += self.cost[n]


@pytest.mark.parametrize(
    "cost, expected",
    [
        ({1: 1.0, 2: 0.5}, 2),  # the split helps: kept
        ({1: 1.0, 2: 1.2}, 1),  # it hurts (a busy core, a slow BLAS kernel): one thread
        ({1: 1.0, 2: 0.95}, 1),  # it gains less than MIN_GAIN: one thread
    ],
)
def test_calibration_keeps_a_split_only_where_it_helps(monkeypatch, cost, expected):
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    clock = _Clock(cost)
    monkeypatch.setattr(threads.time, "perf_counter", clock)
    assert threads.pool_size("kind", 4, 10.0, clock.trial) == expected
    assert sorted(set(clock.calls)) == [1, 2]
    assert len(clock.calls) == 2 * (1 + threads.CALIBRATION_REPEATS)
    plan = ln.backend.thread_plans()["kind"]
    assert plan["threads"] == expected and plan["times_s"] == pytest.approx(cost)
    # cached for the process: the next step of this kind is not timed again, and n_max still bounds it
    assert threads.pool_size("kind", 4, 10.0, _never) == expected
    assert threads.pool_size("kind", 1, 10.0, _never) == 1
    threads.clear_plans()
    assert threads.plans() == {}


def test_a_one_thread_choice_is_timed_once_more_later(monkeypatch):
    """A calibration that fell in a burst of other work (the split looked slower) is repeated once, after
    RETIME_AFTER uses; the new choice holds from then on, and a split that was kept is never re-timed."""
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads, "RETIME_AFTER", 5)
    clock = _Clock({1: 1.0, 2: 1.2})  # the first calibration: the split looks slower
    monkeypatch.setattr(threads.time, "perf_counter", clock)
    assert threads.pool_size("burst", 4, 10.0, clock.trial) == 1
    timed = len(clock.calls)
    for _ in range(5):
        assert threads.pool_size("burst", 4, 10.0, clock.trial) == 1
    assert len(clock.calls) == timed and not threads.plans()["burst"]["retimed"]
    clock.cost = {1: 1.0, 2: 0.5}  # the machine is quiet now
    assert threads.pool_size("burst", 4, 10.0, clock.trial) == 2
    assert len(clock.calls) == 2 * timed and threads.plans()["burst"]["retimed"]
    for _ in range(20):  # once only, and a kept split is not timed again
        assert threads.pool_size("burst", 4, 10.0, _never) == 2
    clock = _Clock({1: 1.0, 2: 0.5})
    monkeypatch.setattr(threads.time, "perf_counter", clock)
    assert threads.pool_size("split", 4, 10.0, clock.trial) == 2
    for _ in range(20):
        assert threads.pool_size("split", 4, 10.0, _never) == 2


def test_calibration_tries_half_the_cores_on_larger_machines(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 8)
    clock = _Clock({1: 1.0, 4: 0.3, 8: 0.4})
    monkeypatch.setattr(threads.time, "perf_counter", clock)
    assert threads.pool_size("kind8", 8, 10.0, clock.trial) == 4
    assert sorted(set(clock.calls)) == [1, 4, 8]


def test_without_a_trial_the_default_is_one_thread():
    assert threads.pool_size("untimed", 4, 10.0, None) == 1
    assert threads.plans() == {}


# ---- the BLAS cap -----------------------------------------------------------------------------------------------


def _blas_threads():
    from threadpoolctl import threadpool_info

    return [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]


def test_blas_cap_inside_a_split_and_restored_after(monkeypatch):
    pytest.importorskip("threadpoolctl")
    from threadpoolctl import threadpool_limits

    if not threads._blas_controllers():
        pytest.skip("no BLAS library found by threadpoolctl")
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    seen = []
    with threadpool_limits(2, user_api="blas"):
        before = _blas_threads()
        threads.run_split([0, 1, 2], lambda lo, hi: seen.append(_blas_threads()))
        after = _blas_threads()
        threads.run_split([0, 2], lambda lo, hi: seen.append(_blas_threads()))  # one chunk: no cap
    assert before == after == [2] * len(before)
    assert seen[:2] == [[1] * len(before)] * 2  # pool x BLAS <= cores while two chunks run
    assert seen[2] == before


def test_blas_cap_validates_and_nests():
    with pytest.raises(ValueError, match="`limit` must be a positive int, got 0"):
        with threads.blas_threads(0):
            pass
    pytest.importorskip("threadpoolctl")
    from threadpoolctl import threadpool_limits

    if not threads._blas_controllers():
        pytest.skip("no BLAS library found by threadpoolctl")
    with threadpool_limits(2, user_api="blas"):
        with threads.blas_threads(1):
            with threads.blas_threads(2):  # a looser inner cap does not lift the outer one
                assert set(_blas_threads()) == {1}
            assert set(_blas_threads()) == {1}
        assert set(_blas_threads()) == {2}


def test_an_error_in_a_chunk_is_raised_after_every_chunk_is_done():
    done = []

    def fn(lo, hi):
        if lo == 1:
            raise RuntimeError("chunk 1")
        done.append(lo)

    with pytest.raises(RuntimeError, match="chunk 1"):
        threads.run_split([0, 1, 2, 3], fn)
    assert sorted(done) == [0, 2]


# ---- results do not depend on the thread count ------------------------------------------------------------------


def _runs():
    rng = np.random.default_rng(3)
    Phi = rng.standard_normal((6, 6)) / 3
    X = rng.standard_normal((6, 40))
    loss = ln.SquaredLoss.whitened(Phi)
    data = ln.SquaredLoss.from_data(X, Phi @ X + 0.1 * rng.standard_normal((6, 40)))
    Ws = ln.init.gaussian((6, 6, 6, 6), scale=0.5, batch=(1100,), seed=5)
    lrs = np.full(1100, 0.05)
    lrs[:40] = np.linspace(0.5, 3.0, 40)  # some nets diverge: frozen, windows replayed
    return {
        "gd": lambda: train.gd(loss, Ws, lr=0.05, steps=30, record_every=7),
        "gd_lr_sweep": lambda: train.gd(loss, Ws, lr=lrs, steps=30, record_every=10),
        "momentum": lambda: train.momentum(data, Ws, lr=0.03, beta=0.8, steps=30, record_every=10),
        "gd_gtol": lambda: train.gd(data, Ws, lr=0.05, steps=40, gtol=1e-3, record_every=40),
    }


def _equal(a, b, msg):
    for name in b._fields:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, tuple):
            assert len(x) == len(y), msg
            for u, v in zip(x, y):
                np.testing.assert_array_equal(u, v, err_msg=f"{msg}: {name}")
        elif isinstance(x, dict):
            assert x.keys() == y.keys(), msg
            for k in x:
                np.testing.assert_array_equal(np.asarray(x[k]), np.asarray(y[k]), err_msg=f"{msg}: {name}[{k}]")
        else:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=f"{msg}: {name}")


@pytest.mark.fastpath
def test_training_is_bitwise_equal_for_every_thread_count(monkeypatch):
    """1, 2 and 3 threads, and the default (its first call calibrating on the very weights it trains), give the
    same Trajectory bit for bit: the chunks are independent nets."""
    monkeypatch.setattr(threads, "MIN_NETS_PER_CHUNK", 100)
    monkeypatch.setattr("linnet.train._buffers._UPDATE_MIN_NETS_PER_THREAD", 100)
    cases = _runs()
    ref = {}
    ln.set_num_threads(1)
    for name, run in cases.items():
        ref[name] = run()
    assert int((np.asarray(ref["gd_lr_sweep"].status) == train.DIVERGED).sum()) > 0
    for n, name in itertools.product((2, 3, None), cases):
        ln.set_num_threads(n)
        threads.clear_plans()
        _equal(cases[name](), ref[name], f"{name}, {n} threads")
    # the split really ran: force the default rule to choose a split, and compare again
    ln.set_num_threads(None)
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads, "MIN_GAIN", float("inf"))
    calls = []
    real = threads.run_split
    monkeypatch.setattr(threads, "run_split", lambda b, *a: (calls.append(len(b) - 1), real(b, *a))[1])
    for name in cases:
        threads.clear_plans()
        monkeypatch.setattr(threads, "_calibrate", lambda cands, trial: {c: 1.0 / c for c in cands})
        _equal(cases[name](), ref[name], f"{name}, calibrated split")
    assert max(calls) == 2
    assert any(v["threads"] == 2 for v in threads.plans().values())


@pytest.mark.fastpath
def test_the_first_call_calibrates_without_changing_its_own_result(monkeypatch):
    """The calibration times the kernel into scratch outputs: the call it runs in returns exactly the result of
    an explicit one-thread call, and records its choice."""
    monkeypatch.setattr(threads, "MIN_NETS_PER_CHUNK", 100)
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    cases = _runs()
    ln.set_num_threads(1)
    ref = cases["momentum"]()
    ln.set_num_threads(None)
    threads.clear_plans()
    _equal(cases["momentum"](), ref, "first default call")
    kinds = [k for k in threads.plans() if k[0] == "quadratic"]
    assert kinds and all(threads.plans()[k]["threads"] in (1, 2) for k in kinds)


# ---- rule 3: no BLAS threads on small products ------------------------------------------------------------------


def test_largest_product_of_a_step():
    Ws = (np.zeros((7, 5)), np.zeros((3, 7)))  # d0 = 5, d1 = 7, d2 = 3
    assert threads.largest_product(Ws) == max(7 * 5 * 5, 3 * 7 * 5, 3 * 5 * 5)
    assert threads.largest_product("not weights") == float("inf")


@pytest.mark.parametrize("width, capped", [(100, True), (101, False)])
def test_a_descent_run_caps_blas_on_small_products_only(monkeypatch, width, capped):
    """Inside gd on one net of width 100 (products of 100**3) BLAS runs one thread, in the validation and in
    every step; at width 101 it keeps its setting. The setting is restored after the run."""
    pytest.importorskip("threadpoolctl")
    from threadpoolctl import threadpool_limits

    from linnet import _step
    from linnet._fastpaths import quadratic
    from linnet.train import _args

    if not threads._blas_controllers():
        pytest.skip("no BLAS library found by threadpoolctl")
    seen = {"kernel": [], "prepare": []}
    real_prepare = _args.prepare

    def spy(real):  # the kernel: a block computed directly, or a bound program run once or repeatedly
        def kernel(*a, **k):
            seen["kernel"].append(_blas_threads())
            return real(*a, **k)

        return kernel

    def prepare(*a, **k):
        seen["prepare"].append(_blas_threads())
        return real_prepare(*a, **k)

    monkeypatch.setattr(quadratic, "_chunk", spy(quadratic._chunk))
    monkeypatch.setattr(quadratic._Program, "__call__", spy(quadratic._Program.__call__))
    monkeypatch.setattr(quadratic._Program, "repeat", spy(quadratic._Program.repeat))
    monkeypatch.setattr(_args, "prepare", prepare)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((width, 2 * width))
    loss = ln.SquaredLoss.from_data(X, X)
    Ws = ln.init.gaussian((width,) * 3, scale=0.5 / np.sqrt(width), seed=1)
    with threadpool_limits(2, user_api="blas"):
        before = _blas_threads()
        run = train.gd(loss, Ws, lr=0.01, steps=3)
        assert _blas_threads() == before
        # the kernel called directly caps too
        seen_direct = len(seen["kernel"])
        _step.value_and_grads(loss, Ws, False, np)
    expected = [1] * len(before) if capped else before
    assert seen["prepare"] == [expected]
    assert len(seen["kernel"]) > seen_direct >= 3 and all(s == expected for s in seen["kernel"])
    assert np.isfinite(np.asarray(run.loss)).all()
