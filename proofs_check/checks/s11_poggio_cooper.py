r"""Type-1 and type-2 critical points, degenerate minima and SGD: Poggio & Cooper (THEOREMS.md §11).

Setting: a deep linear net with scalar output, :math:`f(x) = W_N\cdots W_1x`, square loss
:math:`L = \sum_{i=1}^n \ell_i^2`, :math:`\ell_i = f(x_i) - y_i` (Poggio–Cooper's normalisation; linnet's
:math:`\frac1{2n}\sum_i\ell_i^2` differs by the factor :math:`2n`, converted below). A critical point has
:math:`\sum_i\ell_i\nabla\ell_i = 0`; it is **type 1** if every term vanishes, **type 2** if only the sum does.

Claims checked (deep linear instance):

- Interpolation (:math:`n < d_0`, realisable): at a global minimum :math:`L = 0` the Hessian is
  :math:`2\sum_i\nabla f_i\nabla f_i^\top` (equal to its Gauss–Newton part), with exactly :math:`n` positive and
  :math:`d - n` zero eigenvalues (:math:`d` = number of parameters); every per-sample gradient vanishes, so
  single-sample SGD started there stays put (type 1).
- No interpolation (:math:`n > d_0`): the GD limit is a type-2 point, full gradient ~0 but per-sample terms
  :math:`\ge 10^{-3}`, and single-sample SGD keeps moving.
- The 1-D example (§7.1): :math:`\ell(w, x_i) = a(w - x_i)^2`, :math:`x_2 = -x_1`: GD sees one minimum at 0
  (closed-form trajectory), each per-sample loss has its minimum at :math:`\pm x_1`.
- The origin of a deep net (:math:`N \ge 2`) is a spurious type-1 point: SGD started there stays, a
  :math:`10^{-6}` perturbation escapes.

Source: Poggio & Cooper, "Loss landscape: SGD can have a better view than GD", CBMM memo 2020 (shared/seeds/003),
§§4-7, Theorem 2 (informal), Theorem 3 (degeneracy, citing Cooper, arXiv 1804.10200), §7.1.

Status (THEOREMS.md §11): the statements CONFIRMED (seed; informal in the source); the Hessian-rank fact and
these checks DERIVED. Controls, inside the setting (the interpolation net, scalar output), violating only "at an
interpolating point", each failing on its own: (i) duplicated :math:`x` with conflicting :math:`y` (:math:`n = 4`,
3 distinct inputs), so :math:`\min L > 0`: the GD limit's Hessian has 3, not :math:`n`, positive eigenvalues;
(ii) the critical point :math:`W_N = W_{N-1} = 0`, :math:`W_1 \ne 0` of the interpolation instance
(:math:`L > 0`): the Jacobian of :math:`f` vanishes, so Gauss–Newton is 0, while the residual term
:math:`\langle\nabla\ell(0), \Delta_N\Delta_{N-1}W_1\rangle` is not, and the spectra differ. (THEOREMS.md's control, "GN
spectrum differs at a non-interpolating *minimum*", cannot fail for scalar-output deep linear nets: every critical
point with :math:`W_{2:N}\ne0` has :math:`\nabla\ell(W_e) = 0`, so the residual term vanishes there; case (i) is such a
minimum, and its spectra agree.)

Note: the losses are built as ``ln.LpLoss(X, Y, p=2)``, which *is* :math:`\frac1{2n}\|WX-Y\|^2` but evaluated from
the residuals; ``SquaredLoss.from_data`` evaluates a centred quadratic form that resolves only ~1e-16 absolute
when :math:`\Lambda_{xx}` is singular (:math:`n < d_0`), too coarse for :math:`L \le 10^{-20}`.
"""

from __future__ import annotations

import math

import numpy as np

import linnet as ln

from .._core import Check, Context, Measurement, host, register


def _dense(fn, loss, Ws, xp):
    """Dense (P, P) matrix of a Hessian-vector-product-like map (``ln.hvp`` or ``ln.gauss_newton_hvp``)."""
    widths = (Ws[0].shape[-1],) + tuple(W.shape[-2] for W in Ws)
    P = ln.num_params(Ws)
    E = ln.unflatten(xp.eye(P, dtype=Ws[0].dtype), widths)  # P directions on a leading batch axis
    cols = host(ln.flatten(fn(loss, Ws, E)))  # row k = M e_k
    return 0.5 * (cols + cols.T)


def _per_sample(X, Y):
    """One loss per sample as a batch of problems: X (d0, n) -> (n, d0, 1); value_i = l_i^2 / 2."""
    xp = ln._backend.namespace(X)
    Xb = xp.permute_dims(X, (1, 0))[:, :, None]
    Yb = xp.permute_dims(Y, (1, 0))[:, :, None]
    return ln.LpLoss(Xb, Yb, p=2)


def _sharpness(loss, Ws) -> float:
    """Largest Hessian eigenvalue (over a batch of problems too), from the dense ``ln.hessian``."""
    return float(np.max(np.linalg.eigvalsh(host(ln.hessian(loss, Ws)))))


def _flat_norms(Gs) -> np.ndarray:
    return np.sqrt(sum(np.sum(host(g) ** 2, axis=(-2, -1)) for g in Gs))


@register
class PoggioCooperCriticalPoints(Check):
    id = "s11-poggio-cooper"
    title = "Poggio-Cooper: type-1 vs type-2 critical points, n positive Hessian eigenvalues, SGD"
    claim = "interpolating min: L<={bound:interp_loss}, Hessian rank n (d-n zeros) = GN, per-sample grads 0, SGD stays; type-2: SGD moves"
    source = "Poggio & Cooper 2020 (CBMM memo; seeds/003) Thms 2-3, Sec. 7.1; Cooper arXiv 1804.10200; THEOREMS.md §11"
    status = "MIXED"
    control_description = (
        "same net, scalar output, no interpolation: duplicated x with conflicting y gives a Hessian of rank 3, not n = 4; "
        "at the non-interpolating critical point W_N = W_(N-1) = 0 the Gauss-Newton spectrum is not the Hessian's"
    )

    widths_interp = (6, 4, 3, 1)
    widths_type2 = (3, 4, 3, 1)

    def _eps_loss(self, ctx: Context) -> float:
        return max(1e-20, (1e3 * ctx.eps) ** 2)  # THEOREMS §11: L <= 1e-20 in float64

    def _spec_tol(self, ctx: Context, P: int) -> float:
        # THEOREMS §11: eigenvalues below 1e-8 lambda_max count as zero; never below ~100 P eps (round-off)
        return max(1e-8, 100 * P * ctx.eps)

    def _train(self, ctx: Context, loss, X, Y, widths, key: str, *, gtol=None, steps=20_000):
        """GD from a small balanced init with step 1/S, S the sharpness of the balanced least-squares minimum."""
        Phi = host(Y) @ np.linalg.pinv(host(X))
        S = _sharpness(loss, ln.init.balanced(ctx.asarray(Phi), widths))
        A = 0.1 * np.linalg.norm(Phi) * ctx.rng(key).standard_normal((widths[-1], widths[0]))
        Ws = ln.init.balanced(ctx.asarray(A), widths)
        return ln.train.gd(loss, Ws, lr=1.0 / S, steps=steps, gtol=gtol, record_every=100).weights

    def _interpolating_data(self, ctx: Context):
        d0, n = self.widths_interp[0], 3
        rng = ctx.rng("s11-interp")
        X = ctx.asarray(rng.standard_normal((d0, n)))
        Y = ctx.asarray(rng.standard_normal((1, d0))) @ X
        return X, Y

    def _interpolating(self, ctx: Context):
        n = 3
        X, Y = self._interpolating_data(ctx)
        loss = ln.LpLoss(X, Y, p=2)
        # run to the round-off floor (~1e-30): the per-sample gradients then vanish to ~1e-15
        Ws = self._train(ctx, loss, X, Y, self.widths_interp, "s11-init1", steps=ctx.pick(5000, 10_000))
        return X, Y, loss, Ws, n

    def _type2(self, ctx: Context):
        d0, n = self.widths_type2[0], 12
        rng = ctx.rng("s11-type2")
        X = ctx.asarray(rng.standard_normal((d0, n)))
        Y = ctx.asarray(rng.standard_normal((1, d0)) @ host(X) + 0.5 * rng.standard_normal((1, n)))
        loss = ln.LpLoss(X, Y, p=2)
        gtol = max(1e-13, 10 * ctx.eps)  # mean-normalised gradient; the PC sum is n times it
        Ws = self._train(ctx, loss, X, Y, self.widths_type2, "s11-init2", gtol=gtol)
        return X, Y, loss, Ws, n

    def _spectra(self, ctx: Context, loss, Ws):
        xp = ctx.xp
        H = host(ln.hessian(loss, Ws))
        GN = _dense(ln.gauss_newton_hvp, loss, Ws, xp)
        ev, ev_gn = np.linalg.eigvalsh(H), np.linalg.eigvalsh(GN)
        scale = float(np.max(np.abs(ev)))
        return ev, ev_gn, scale

    def measure(self, ctx: Context) -> Measurement:
        parts = {}
        # 1. interpolation regime
        X, Y, loss, Ws, n = self._interpolating(ctx)
        P = ln.num_params(Ws)
        R = host(ln.end_to_end(Ws) @ X - Y)
        L_pc = float(np.sum(R**2))  # Poggio-Cooper normalisation sum_i l_i^2
        ev, ev_gn, scale = self._spectra(ctx, loss, Ws)
        thr = self._spec_tol(ctx, P)
        n_pos = int(np.sum(ev > thr * scale))
        n_zero = int(np.sum(np.abs(ev) <= thr * scale))
        ps = _per_sample(X, Y)
        g_i = 2 * _flat_norms(ln.grad(ps, Ws))  # ||grad(l_i^2)|| = 2 ||grad(l_i^2 / 2)||
        lr1 = 0.5 / _sharpness(ps, Ws)  # every single-sample step is a non-expansive map near the minimum
        sgd = ln.train.sgd(loss, Ws, lr=lr1, steps=200, batch_size=1, seed=ctx.rng("s11-sgd1"), keep_history=True)
        th = host(ln.flatten(sgd.history))
        disp = float(np.max(np.linalg.norm(th - th[0], axis=-1)))
        parts["interp_loss"] = Measurement.compare(
            L_pc, self._eps_loss(ctx), "<=", f"sum_i l_i^2, n={n} < d0={X.shape[0]}"
        )
        parts["hessian_n_positive"] = Measurement.compare(
            abs(n_pos - n), 0, "<=", f"|#(eigenvalues > {thr:g} lambda_max) - n|: {n_pos} positive, n={n}, d={P}"
        )
        parts["hessian_d_minus_n_zero"] = Measurement.compare(
            n_zero, P - n, ">=", f"|eigenvalues| <= {thr:g} lambda_max (d - n = {P - n})"
        )
        parts["hessian_equals_gauss_newton"] = Measurement.compare(
            float(np.max(np.abs(ev - ev_gn))) / scale,
            thr,
            "<=",
            "max|eig(H) - eig(J^T J part)| / lambda_max at the interpolating minimum",
        )
        parts["per_sample_gradients_vanish"] = Measurement.compare(
            float(g_i.max()), max(1e-12, 1e4 * ctx.eps), "<=", "max_i ||grad(l_i^2)|| (type 1)"
        )
        parts["sgd_stays"] = Measurement.compare(
            disp, max(1e-14, 100 * ctx.eps), "<=", f"max displacement of 200 single-sample SGD steps (lr {lr1:.3g})"
        )

        # 2. type-2 point
        X2, Y2, loss2, W2, n2 = self._type2(ctx)
        full = n2 * _flat_norms(ln.grad(loss2, W2))  # ||sum_i l_i grad l_i||
        terms = _flat_norms(ln.grad(_per_sample(X2, Y2), W2))  # ||l_i grad l_i||
        lr = 0.5 / _sharpness(_per_sample(X2, Y2), W2)
        sgd2 = ln.train.sgd(loss2, W2, lr=lr, steps=200, batch_size=1, seed=ctx.rng("s11-sgd2"), keep_history=True)
        th2 = host(ln.flatten(sgd2.history))
        step_disp = float(np.mean(np.linalg.norm(np.diff(th2, axis=0), axis=-1)))
        L2 = host(sgd2.loss)
        parts["sgd_replay"] = Measurement.compare(
            max(
                self._sgd_replay(ctx, X2, Y2, W2, lr, th2, "s11-sgd2"),
                self._sgd_replay(ctx, X2, Y2, W2, lr, self._sgd_squared(ctx, X2, Y2, W2, lr), "s11-sgd-sq"),
            ),
            1e3 * ctx.eps,
            "<=",
            "first 10 SGD iterates (LpLoss p=2 and SquaredLoss.from_data) vs a host replay of the documented draws and minibatch-mean steps (relative)",
        )
        parts["type2_full_gradient"] = Measurement.compare(
            float(full),
            max(1e-10, 1e5 * ctx.eps),
            "<=",
            f"||sum_i l_i grad l_i|| at the GD limit, n={n2} > d0={X2.shape[0]}",
        )
        parts["type2_per_sample_terms"] = Measurement.compare(
            float(terms.max()), 1e-3, ">=", "max_i ||l_i grad l_i|| (type 2: terms do not vanish)"
        )
        parts["type2_sgd_moves"] = Measurement.compare(
            step_disp / lr,
            1e-3,
            ">=",
            f"mean single-sample SGD step / eta; loss fluctuates in [{L2.min():.4g}, {L2.max():.4g}]",
        )

        # 3. the 1-D example and 4. the spurious point at the origin
        parts.update(self._one_d(ctx))
        parts.update(self._spurious(ctx))
        return Measurement.all_of(
            parts, note=f"interpolation widths {self.widths_interp}, type-2 widths {self.widths_type2}"
        )

    @staticmethod
    def _sgd_squared(ctx: Context, X, Y, Ws, lr: float):
        """The flattened history of 10 single-sample SGD steps on ``SquaredLoss.from_data`` (minibatch statistics)."""
        run = ln.train.sgd(
            ln.SquaredLoss.from_data(X, Y),
            Ws,
            lr=lr,
            steps=10,
            batch_size=1,
            seed=ctx.rng("s11-sgd-sq"),
            keep_history=True,
        )
        return host(ln.flatten(run.history))

    @staticmethod
    def _sgd_replay(ctx: Context, X, Y, Ws, lr: float, th, key: str, k_steps: int = 10) -> float:
        r"""Largest relative difference between the trainer's first iterates ``th`` (flattened history) and a host
        float64 replay: step :math:`k` draws ``rng.choice(m, b, replace=False)`` from the same generator and
        moves every layer by :math:`-\eta\,\partial L_{B_k}/\partial W_j` with :math:`L_{B_k}` the minibatch
        mean :math:`\|W X_B - Y_B\|^2/(2b)` (the documented statistics of ``ln.train.sgd``, batch size 1)."""
        rng = ctx.rng(key)
        Xh, Yh = host(X), host(Y)
        W = [host(w) for w in Ws]
        m, N = Xh.shape[1], len(W)
        worst = 0.0
        for k in range(1, k_steps + 1):
            idx = rng.choice(m, size=1, replace=False)
            Xb, Yb = Xh[:, idx], Yh[:, idx]
            pre = [np.eye(Xh.shape[0])]
            for w in W:
                pre.append(w @ pre[-1])
            G = (pre[-1] @ Xb - Yb) @ Xb.T / Xb.shape[1]
            suf = np.eye(Yh.shape[0])
            grads = [None] * N
            for j in range(N - 1, -1, -1):
                grads[j] = suf.T @ G @ pre[j].T
                suf = suf @ W[j]
            W = [w - lr * g for w, g in zip(W, grads)]
            ref = np.concatenate([w.ravel() for w in W])
            worst = max(worst, float(np.max(np.abs(th[k] - ref)) / max(np.max(np.abs(ref)), 1e-300)))
        return worst

    def _one_d(self, ctx: Context) -> dict:
        r"""ℓ(w, x_i) = a(w - x_i)², x_2 = -x_1, as a depth-1 scalar net on inputs 1: here a = 1/4 (mean, ½)."""
        x1, w0, lr, k = 1.5, 0.8, 0.1, 50
        X = ctx.asarray(np.ones((1, 2)))
        Y = ctx.asarray(np.array([[x1, -x1]]))
        loss = ln.LpLoss(X, Y, p=2)  # (1/4) sum_i (w - x_i)^2 = w^2/2 + x1^2/2: gradient w
        run = ln.train.gd(loss, (ctx.asarray(np.array([[w0]])),), lr=lr, steps=k)
        w_gd = host(run.loss)  # l(w_t) = w_t^2/2 + x1^2/2
        closed = 0.5 * (w0 * (1 - lr) ** np.arange(k + 1)) ** 2 + 0.5 * x1**2
        # per-sample losses: each has its own minimum at +x1 and -x1; GD on each converges there
        ps = _per_sample(X, Y)
        per = ln.train.gd(ps, (ctx.asarray(np.full((2, 1, 1), w0)),), lr=0.5, steps=200).weights[0]
        mins = host(per).reshape(-1)
        g0 = host(ln.grad(ps, (ctx.asarray(np.zeros((1, 1))),))[0]).reshape(-1)  # at GD's minimum w = 0
        return {
            "one_d_gd_closed_form": Measurement.compare(
                float(np.max(np.abs(w_gd[: k + 1] - closed))),
                1e3 * ctx.eps,
                "<=",
                "GD loss vs (w0 (1-eta)^t)^2/2 + x1^2/2 (single minimum at 0)",
            ),
            "one_d_per_sample_minima": Measurement.compare(
                float(np.max(np.abs(mins - np.array([x1, -x1])))),
                1e3 * ctx.eps,
                "<=",
                f"per-sample GD limits {np.round(mins, 12).tolist()} vs +-x1 = +-{x1}",
            ),
            "one_d_zero_is_type2": Measurement.compare(
                float(np.min(np.abs(g0))), 0.1, ">=", f"per-sample gradients at w=0: {g0.tolist()} (sum 0)"
            ),
        }

    def _spurious(self, ctx: Context) -> dict:
        widths = (3, 4, 1)
        rng = ctx.rng("s11-spurious")
        X = ctx.asarray(rng.standard_normal((3, 8)))
        Y = ctx.asarray(rng.standard_normal((1, 3)) @ host(X))
        loss = ln.LpLoss(X, Y, p=2)
        ps = _per_sample(X, Y)
        Z = ln.init.zeros(widths, xp=ctx.xp, dtype=ctx.dtype)
        g = _flat_norms(ln.grad(ps, Z))
        Phi = host(Y) @ np.linalg.pinv(host(X))
        lr = 0.5 / _sharpness(ps, ln.init.balanced(ctx.asarray(Phi), widths))
        stay = ln.train.sgd(loss, Z, lr=lr, steps=100, batch_size=1, seed=0)
        moved = float(np.max(_flat_norms(stay.weights)))
        pert = ln.init.gaussian(widths, scale=1e-6, seed=rng, xp=ctx.xp, dtype=ctx.dtype)
        # escape from 1e-6 grows like (1 + lr sigma_1(Lambda_yx))^t: budget three e-folds per decade, then settle
        rate = lr * float(np.linalg.norm(host(Y) @ host(X).T / X.shape[-1]))
        steps = int(min(20_000, 3 * math.log(1e8) / rate + 200))
        esc = ln.train.sgd(loss, pert, lr=lr, steps=steps, batch_size=1, seed=1)
        Le = host(esc.loss)
        return {
            "origin_per_sample_gradients_zero": Measurement.compare(float(g.max()), 0.0, "<=", "spurious type-1 point"),
            "origin_sgd_stays": Measurement.compare(moved, 0.0, "<=", "SGD from exactly 0"),
            "origin_perturbed_escapes": Measurement.compare(
                float(Le[-1] / Le[0]),
                0.01,
                "<=",
                f"loss ratio after {steps} SGD steps (lr {lr:.3g}) from a 1e-6 perturbation",
            ),
        }

    def control(self, ctx: Context) -> Measurement:
        """Both cases stay in the theorem's setting (deep linear, scalar output, the interpolation widths) and
        violate only its hypothesis "at an interpolating point"."""
        widths = self.widths_interp
        d0 = widths[0]
        # (i) n = 4 samples with x_4 = x_3 and y_4 != y_3: no interpolation (min L > 0). The GD limit is a global
        # minimum with grad l(W_e) = 0, its Hessian is Gauss-Newton of rank #distinct x = 3, not n: the count fails
        rng = ctx.rng("s11-control-dup")
        Xh = rng.standard_normal((d0, 3))
        Xh = np.concatenate([Xh, Xh[:, 2:3]], axis=1)
        Yh = rng.standard_normal((1, d0)) @ Xh
        Yh[0, 3] += 1.0
        X, Y = ctx.asarray(Xh), ctx.asarray(Yh)
        n = Xh.shape[1]
        loss = ln.LpLoss(X, Y, p=2)
        Ws = self._train(ctx, loss, X, Y, widths, "s11-control-init", steps=ctx.pick(5000, 10_000))
        L_pc = float(np.sum(host(ln.end_to_end(Ws) @ X - Y) ** 2))
        ev, ev_gn, scale = self._spectra(ctx, loss, Ws)
        gn_gap = float(np.max(np.abs(ev - ev_gn))) / scale
        thr = self._spec_tol(ctx, ln.num_params(Ws))
        n_pos = int(np.sum(ev > thr * scale))
        # (ii) a non-interpolating critical point of the interpolation instance itself: W_N = W_(N-1) = 0, W_1 != 0.
        # Every layer gradient has a zero factor (critical), the Jacobian of f vanishes (GN = 0), but the residual
        # term <grad l(0), dW_N dW_(N-1) W_1> does not: H != GN
        X1, Y1 = self._interpolating_data(ctx)
        loss1 = ln.LpLoss(X1, Y1, p=2)
        W1 = ln.init.gaussian(widths[:2], scale=1.0, seed=ctx.rng("s11-control-w1"), xp=ctx.xp, dtype=ctx.dtype)[0]
        Wc = (W1,) + tuple(ln.init.zeros(widths[1:], xp=ctx.xp, dtype=ctx.dtype))
        gnorm = float(np.max(_flat_norms(ln.grad(loss1, Wc))))
        evc, evc_gn, scc = self._spectra(ctx, loss1, Wc)
        L1 = float(np.sum(host(ln.end_to_end(Wc) @ X1 - Y1) ** 2))
        return Measurement.any_of(
            {
                "no_interpolation_rank_n": Measurement.compare(
                    abs(n_pos - n),
                    0,
                    "<=",
                    f"duplicated x with conflicting y (n={n}, 3 distinct, widths {widths}): GD limit sum l_i^2 = "
                    f"{L_pc:.3g} > 0, positive Hessian eigenvalues {n_pos} (must be n to hold); H = GN to {gn_gap:.2g} "
                    "there (grad l(W_e) = 0 at every scalar-output minimum)",
                ),
                "critical_non_interpolating_H_eq_GN": Measurement.compare(
                    float(np.max(np.abs(evc - evc_gn))) / scc,
                    self._spec_tol(ctx, ln.num_params(Wc)),
                    "<=",
                    f"critical point W_N = W_(N-1) = 0, W_1 random (gradient {gnorm:.2g}, sum l_i^2 = {L1:.4g} > 0): "
                    "max|eig(H) - eig(GN)|/lambda_max",
                ),
            }
        )
