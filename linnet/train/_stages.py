r"""The stages of the Dormand–Prince 5(4) pair that :mod:`linnet.train.flow` integrates with: the tableau, and
the stage arithmetic of one attempted step on either backend.

A step of size :math:`h` from :math:`y` with derivatives :math:`k_0 = v(y)` (FSAL) forms the stage states
:math:`y_s = y + h\sum_{i<s} a_{si}k_i` (:math:`s = 1..6`; :math:`y_6` is the 5th-order solution), the error
estimate :math:`h\sum_i e_ik_i` with :math:`e = b - \hat b`, and per net the accepted state and derivative.
:class:`_ArrayStages` does this in array code, :class:`_NumpyStages` in reused NumPy buffers combined by BLAS;
both expose the same methods, so the integrator has one code path.

References
----------
Dormand & Prince, A family of embedded Runge–Kutta formulae, J. Comput. Appl. Math. 6, 1980;
Hairer, Nørsett & Wanner, Solving Ordinary Differential Equations I, 2nd ed., Table II.5.2 (DOPRI5).
"""

from __future__ import annotations

import math

from .. import _backend

_np = _backend.np  # NumPy, as imported by linnet._backend (stage buffers on the NumPy namespace only)


# Dormand & Prince, "A family of embedded Runge-Kutta formulae", J. Comput. Appl. Math. 6 (1980) 19-26;
# Hairer, Norsett & Wanner, Solving ODEs I, 2nd ed., Table II.5.2 (DOPRI5). Nodes c are not needed: the
# dynamics are autonomous.
_DP_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),  # = b (5th order): FSAL
)
# error weights b - b_hat (b_hat: the embedded 4th-order solution)
_DP_E = (
    35 / 384 - 5179 / 57600,
    0.0,
    500 / 1113 - 7571 / 16695,
    125 / 192 - 393 / 640,
    -2187 / 6784 + 92097 / 339200,
    11 / 84 - 187 / 2100,
    -1 / 40,
)


def _lincomb(coeffs, ks, j):
    """Layer ``j`` of :math:`\\sum_i c_i k_i` over the stages ``ks`` (zero coefficients skipped)."""
    out = None
    for c, k in zip(coeffs, ks):
        if c == 0.0:
            continue
        t = c * k[j]
        out = t if out is None else out + t
    return out


class _ArrayStages:
    r"""Stage storage of the integrator in array code (any namespace): the list of stage derivatives, combined
    layer by layer by :func:`_lincomb`.

    Per attempted step: :meth:`begin` with :math:`k_0` and the step sizes, then for each stage :meth:`state` and
    :meth:`put`, then :meth:`error_sq` per layer and :meth:`take`."""

    #: Whether the right-hand side may write stage derivatives into :meth:`outs` (no: array code is functional).
    buffered = False

    def __init__(self, xp, dt):
        self.xp, self.dt = xp, dt
        self.ks: list = []
        self.hb = None

    def private(self, F):
        """The derivatives the integrator keeps between steps (array code makes fresh arrays: ``F`` itself)."""
        return F

    def begin(self, F, he):
        """Start a step of sizes ``he`` (per net, float64) from the derivatives ``F`` (stage 0)."""
        self.hb = self.xp.astype(he, self.dt)[..., None, None]
        self.ks = [F]

    def outs(self, s):
        """Buffers the right-hand side may write stage ``s`` into: none in array code."""
        return None

    def state(self, s, y):
        """The state of stage ``s``: ``y_j + h sum_i a_{si} k_i``."""
        return tuple(v + self.hb * _lincomb(_DP_A[s], self.ks, j) for j, v in enumerate(y))

    def put(self, s, Ks):
        """Store stage ``s``'s derivatives."""
        self.ks.append(Ks)

    def error_sq(self, j, v, vn, atol, rtol, tiny):
        """Per net, the sum of squares of layer ``j``'s scaled error
        ``h sum_i e_i k_i / max(atol + rtol * max(|v|, |vn|), tiny)``."""
        xp = self.xp
        q = self.hb * _lincomb(_DP_E, self.ks, j) / xp.maximum(atol + rtol * xp.maximum(xp.abs(v), xp.abs(vn)), tiny)
        return xp.sum(q * q, axis=(-2, -1))

    def take(self, y, F, y_new, accept):
        """Per net, the proposed state ``y_new`` and its derivatives (stage 6) where ``accept``, else ``y``, ``F``
        (fresh arrays)."""
        xp = self.xp
        acc_b = accept[..., None, None]
        F_new = self.ks[6]
        return (
            tuple(xp.where(acc_b, vn, v) for vn, v in zip(y_new, y)),
            tuple(xp.where(acc_b, fn, f) for fn, f in zip(F_new, F)),
        )


class _NumpyStages:
    r"""NumPy stage storage of the integrator: per layer one array ``K_j`` of shape ``(7, nets, d_j, d_{j-1})``
    holding the stage derivatives, so that a combination :math:`\sum_i a_{si}k_i` is one matrix-vector product
    ``a @ K_j[:s]`` (BLAS) instead of ``2s`` elementwise passes; the stage states
    :math:`y_s = y + h\sum_i a_{si}k_i` are formed in place in reused buffers. Same maths and methods as
    :class:`_ArrayStages`, round-off differs at the ulp level (summation order)."""

    buffered = True

    def __init__(self, y0, dt):
        self.shapes = [tuple(y.shape) for y in y0]
        self.nb = math.prod(self.shapes[0][:-2])
        self.K = [_np.empty((7,) + s, dtype=dt) for s in self.shapes]
        self.views = [tuple(K[s] for K in self.K) for s in range(7)]  # K_j[s], made once: `put` knows them by id
        self.Y = [_np.empty(s, dtype=dt) for s in self.shapes]
        self.A = [_np.asarray(a, dtype=dt) for a in _DP_A]
        self.E = _np.asarray(_DP_E, dtype=dt)
        self.dt = dt
        self.hcol = None
        self._scratch = None

    def private(self, F):
        """Private, writable copies of ``F``: :meth:`take` selects the accepted derivatives into them in place."""
        return tuple(_np.array(f, dtype=self.dt, copy=True) for f in F)

    def begin(self, F, he):
        """Start a step of sizes ``he`` (per net, float64) from the derivatives ``F`` (stage 0)."""
        self.hcol = he.astype(self.dt).reshape(self.nb, 1)
        self.put(0, F)

    def outs(self, s):
        """The buffers ``K_j[s]`` the right-hand side may write stage ``s``'s derivatives into."""
        return self.views[s]

    def put(self, s, Ks):
        """Store stage ``s``'s derivatives (skipped when the rhs already wrote them into :meth:`outs`)."""
        for V, k in zip(self.views[s], Ks):
            if k is not V:
                _np.copyto(V, k)

    def combine(self, coeffs, s, j, out=None):
        """``h * (coeffs @ K_j[:s])`` with ``h`` per net (:attr:`hcol` of shape ``(nets, 1)``)."""
        flat = self.K[j][:s].reshape(s, -1)
        S = _np.matmul(coeffs[None, :s], flat, out=None if out is None else out.reshape(1, -1))  # BLAS (1, s) @ (s, n)
        S2 = S.reshape(self.nb, -1)
        _np.multiply(S2, self.hcol, out=S2)
        return S.reshape(self.shapes[j])

    def state(self, s, y):
        """The state of stage ``s``: ``y_j + h sum_i a_{si} k_i`` (into reused buffers; stage 6 gets fresh ones,
        it is the proposed solution)."""
        out = []
        for j, v in enumerate(y):
            buf = None if s == 6 else self.Y[j]
            S = self.combine(self.A[s], s, j, out=buf)
            out.append(_np.add(v, S, out=S))
        return tuple(out)

    def error_sq(self, j, v, vn, atol, rtol, tiny):
        """Per net, the sum of squares of layer ``j``'s scaled error
        ``h sum_i e_i k_i / max(atol + rtol * max(|v|, |vn|), tiny)``: the array code's arithmetic, operation for
        operation, in two reused scratch arrays instead of six fresh ones."""
        if self._scratch is None:
            self._scratch = [(_np.empty(s, dtype=self.dt), _np.empty(s, dtype=self.dt)) for s in self.shapes]
        e_buf, sc = self._scratch[j]
        _np.abs(v, out=sc)
        _np.maximum(sc, _np.abs(vn, out=e_buf), out=sc)
        _np.multiply(sc, rtol, out=sc)
        _np.add(sc, atol, out=sc)
        _np.maximum(sc, tiny, out=sc)
        q = self.combine(self.E, 7, j, out=e_buf)
        _np.divide(q, sc, out=q)
        _np.multiply(q, q, out=q)
        return _np.sum(q, axis=(-2, -1))

    def take(self, y, F, y_new, accept):
        """The selections of :meth:`_ArrayStages.take` in place: ``y_new`` is fresh (stage 6), ``F`` is private
        (never a stage buffer)."""
        acc_b = accept[..., None, None]
        rej_b = ~acc_b
        for vn, v in zip(y_new, y):
            _np.copyto(vn, v, where=rej_b)
        for f, fn in zip(F, (K[6] for K in self.K)):
            _np.copyto(f, fn, where=acc_b)
        return y_new, F


def _stages_for(y0, xp):
    """The stage storage of a run from ``y0``: NumPy buffers for plain NumPy arrays, else array code."""
    if _backend.is_numpy_namespace(xp) and all(type(v) is _np.ndarray for v in y0):
        return _NumpyStages(y0, y0[0].dtype)
    return _ArrayStages(xp, y0[0].dtype)
