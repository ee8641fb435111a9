"""The contract of a theorem check: ``Context`` in, ``Verdict`` out, with a negative control.

A check states one theorem (hypotheses ⇒ conclusion). ``measure(ctx)`` runs the theorem's assertion on inputs
that satisfy the hypotheses and returns a :class:`Measurement` (the measured figure, the bound it is held to,
whether it holds). ``control(ctx)`` runs the *same* assertion on an input that violates a hypothesis (or with
a deliberately broken formula) and must come back with ``holds=False``: a check whose control holds is itself
a defect, and the run reports it.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
import zlib
from types import MappingProxyType
from typing import Any, Callable, Mapping, NamedTuple

import numpy as np

__all__ = [
    "EPS64",
    "HEADROOM",
    "ROUNDOFF_TERMS",
    "roundoff_bound",
    "fd_bound",
    "host",
    "Context",
    "Measurement",
    "Verdict",
    "Check",
    "register",
    "REGISTRY",
    "all_checks",
    "run_check",
    "error_verdict",
    "margin_decades",
    "render_claim",
]

SCALES = ("quick", "full")
EPS64 = float(np.finfo(np.float64).eps)
STATUSES = ("CONFIRMED", "DERIVED+VERIFIED", "UNCONFIRMED", "MIXED")

#: How far a bound derived from an error scale sits above that scale: two decades. The error scales are models
#: (below), not observations, so a bound does not move when the engine's error does: an engine error 100x its
#: round-off fails the check.
HEADROOM = 100.0
#: Round-off of an exact identity evaluated in floating point: the relative error of the sums and products the
#: checks compare, modelled as this many units of ``eps`` (observed: 0.3-20 eps on the checks' sizes).
ROUNDOFF_TERMS = 10.0


def roundoff_bound(eps: float) -> float:
    """The bound on the relative error of an exact identity computed in a dtype with machine epsilon ``eps``:
    ``HEADROOM * ROUNDOFF_TERMS * eps`` (2.2e-13 in float64, 1.2e-4 in float32)."""
    return HEADROOM * ROUNDOFF_TERMS * eps


def fd_bound(h: float, eps: float) -> float:
    r"""The bound on the relative error of a central difference with step ``h`` computed in float64 on the host,
    against an engine computing in a dtype with epsilon ``eps``: ``HEADROOM`` times the error scale
    :math:`h^2 + \epsilon_{64}/h + \epsilon` (truncation, float64 cancellation in the difference, the engine's
    round-off): 2.2e-8 for :math:`h = 10^{-6}` in float64, 1.2e-5 in float32."""
    return HEADROOM * (h * h + EPS64 / h + eps)


def host(a: Any) -> np.ndarray:
    """A copy of an array of any backend as a float64 NumPy array (for host-side references)."""
    from linnet.backend import to_numpy

    return np.asarray(to_numpy(a), dtype=np.float64)


@dataclasses.dataclass(frozen=True)
class Context:
    """What a check runs with: backend name, dtype name, seed and scale (``quick`` for CI, ``full`` for a GPU)."""

    backend: str = "numpy"
    dtype: str = "float64"
    seed: int = 0
    scale: str = "quick"

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"`scale` must be one of {SCALES}, got {self.scale!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"`dtype` must be 'float32' or 'float64', got {self.dtype!r}")

    @property
    def xp(self):
        """The array namespace of ``backend``."""
        from linnet.backend import get_namespace

        return get_namespace(self.backend)

    @property
    def eps(self) -> float:
        """Machine epsilon of ``dtype``."""
        return float(np.finfo(self.dtype).eps)

    @property
    def quick(self) -> bool:
        return self.scale == "quick"

    def rng(self, key: str = "") -> np.random.Generator:
        """A host NumPy generator for this seed and a key (so checks draw independent streams)."""
        return np.random.default_rng([int(self.seed), zlib.crc32(key.encode())])

    def asarray(self, a: Any):
        """Move a host array to the backend in the context's dtype."""
        from linnet.backend import from_host

        return from_host(a, self.xp, self.dtype)

    def pick(self, quick: Any, full: Any) -> Any:
        """``quick`` or ``full`` by scale."""
        return quick if self.quick else full


def margin_decades(figure: float, bound: float, relation: str = "<=") -> float | None:
    """How far ``figure`` is from ``bound`` on the side the relation asks for, in decades (log10 of the ratio).

    Positive: the assertion holds with that much room (``1e-12 <= 1e-8`` has margin 4; ``0.9992 <= 1`` has
    3.5e-4, a close call); negative: it fails by that much; ``inf`` for an exact figure (0 against a non-zero
    bound); ``None`` when a ratio means nothing (signs differ, or the figure equals its bound, as a count 0 <= 0 or
    a fraction 1 >= 1 does). NaN gives NaN.
    """
    try:
        f, b = float(figure), float(bound)
    except (TypeError, ValueError):
        return None
    if math.isnan(f) or math.isnan(b):
        return float("nan")
    upper = relation in ("<=", "<")
    if f == b:
        return None  # a requirement met exactly (a count 0 <= 0, a fraction 1 >= 1): no ratio to report
    if f == 0.0 and b != 0.0:
        return math.inf if (b > 0) == upper else -math.inf
    if f == 0.0 or b == 0.0 or (f > 0) != (b > 0) or math.isinf(f) or math.isinf(b):
        if math.isinf(f) and not math.isinf(b):
            return -math.inf if (f > 0) == upper else math.inf
        return None
    r = math.log10(abs(b) / abs(f))  # > 0 when |figure| < |bound|
    if f < 0:
        r = -r  # negative numbers: figure <= bound means |figure| >= |bound|
    return r if upper else -r


_PLACEHOLDER = re.compile(r"\{bound(?::([^{}]+))?\}")


def render_claim(claim: str, result: "Measurement | None" = None) -> str:
    """The claim with ``{bound}`` (the headline bound) and ``{bound:PART}`` (a part's bound) filled in from the
    measurement of the dtype that ran, so the table states the thresholds actually applied."""

    def sub(m):
        if result is None:
            return "tol"
        part = m.group(1)
        if part is None:
            value = result.bound
        else:
            d = result.details.get(part) if isinstance(result.details, dict) else None
            if not isinstance(d, dict) or "bound" not in d:
                return "tol"
            value = d["bound"]
        return f"{float(value):.3g}"

    return _PLACEHOLDER.sub(sub, claim)


class Measurement(NamedTuple):
    """One assertion, measured: ``figure`` held to ``bound`` by ``relation`` (``'<='`` or ``'>='``).

    ``margin`` (a property, in decades) says how far the figure is from its bound; ``worst_margin`` the smallest
    margin over the parts of a combined measurement (the closest call)."""

    figure: float
    bound: float
    holds: bool
    relation: str = "<="
    note: str = ""
    details: Mapping[str, Any] = MappingProxyType({})  # read-only empty default: no mutable default shared by all

    @property
    def margin(self) -> float | None:
        """``margin_decades`` of the headline figure."""
        return margin_decades(self.figure, self.bound, self.relation)

    @property
    def worst_margin(self) -> float | None:
        """The smallest defined margin over the parts (``details`` entries with a figure), else ``margin``."""
        ms = []
        for d in (self.details or {}).values():
            if isinstance(d, dict) and "figure" in d and "bound" in d:
                m = margin_decades(d["figure"], d["bound"], d.get("relation", "<="))
                if m is not None and not math.isnan(m):
                    ms.append(m)
        if not ms:
            return self.margin
        return min(ms)

    @classmethod
    def compare(cls, figure: float, bound: float, relation: str = "<=", note: str = "", **details) -> "Measurement":
        """Build a measurement whose ``holds`` is ``figure <relation> bound`` (NaN never holds)."""
        f, b = float(figure), float(bound)
        if relation == "<=":
            ok = f <= b
        elif relation == ">=":
            ok = f >= b
        elif relation == "<":
            ok = f < b
        elif relation == ">":
            ok = f > b
        else:
            raise ValueError(f"`relation` must be one of '<=', '>=', '<', '>', got {relation!r}")
        return cls(f, b, bool(ok and np.isfinite(f)), relation, note, dict(details))

    @classmethod
    def all_of(cls, parts: dict[str, "Measurement"], note: str = "") -> "Measurement":
        """Several sub-assertions: holds iff all hold; the headline figure is the first part's."""
        items = list(parts.items())
        first = items[0][1]
        details = {
            k: {"figure": m.figure, "bound": m.bound, "relation": m.relation, "holds": m.holds, "note": m.note}
            for k, m in items
        }
        return cls(
            first.figure, first.bound, all(m.holds for _, m in items), first.relation, note or first.note, details
        )

    @classmethod
    def any_of(cls, parts: dict[str, "Measurement"], note: str = "") -> "Measurement":
        """Several negative controls: the combination holds if any one holds (so every one must fail)."""
        return cls.all_of(parts, note=note)._replace(holds=any(m.holds for m in parts.values()))


class Verdict(NamedTuple):
    """The result of one check: the measurement, the control's measurement and the time taken."""

    id: str
    title: str
    claim: str
    source: str
    status: str
    result: Measurement
    control: Measurement
    control_description: str
    seconds: float

    @property
    def holds(self) -> bool:
        return self.result.holds

    @property
    def control_failed(self) -> bool:
        """``True`` when the control failed, as it must."""
        return not self.control.holds

    @property
    def ok(self) -> bool:
        return self.holds and self.control_failed

    def as_dict(self) -> dict:
        d = self._asdict()
        d["result"] = self.result._asdict() | {
            "details": dict(self.result.details),
            "margin": self.result.margin,
            "worst_margin": self.result.worst_margin,
        }
        d["control"] = self.control._asdict() | {"details": dict(self.control.details)}
        d["margin"] = self.result.worst_margin
        d["ok"] = self.ok
        d["control_failed"] = self.control_failed
        return d


class Check:
    """Base class of a theorem check. Subclasses set the class attributes and implement both methods.

    Attributes
    ----------
    id : short unique name (``-k`` selects on it)
    title : the theorem in a few words
    claim : one line for the table: what is asserted
    source : citation (arXiv id, theorem or equation number)
    status : as in THEOREMS.md: CONFIRMED, DERIVED+VERIFIED, UNCONFIRMED or MIXED
    control_description : what the negative control violates
    """

    id: str = ""
    title: str = ""
    claim: str = ""
    source: str = ""
    status: str = ""
    #: ``"light"``: run in CI's registry test (tests/test_proofs_registry.py); ``"heavy"``: only under ``-m slow``.
    cost: str = "light"
    control_description: str = ""

    def measure(self, ctx: Context) -> Measurement:  # pragma: no cover - abstract
        raise NotImplementedError

    def control(self, ctx: Context) -> Measurement:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, ctx: Context) -> Verdict:
        t0 = time.perf_counter()
        result = self.measure(ctx)
        ctrl = self.control(ctx)
        return Verdict(
            self.id,
            self.title,
            render_claim(self.claim, result),
            self.source,
            self.status,
            result,
            ctrl,
            self.control_description,
            time.perf_counter() - t0,
        )


REGISTRY: dict[str, Check] = {}


def register(cls: type) -> type:
    """Class decorator: instantiate the check and add it to the registry (ids must be unique)."""
    inst = cls()
    prev = REGISTRY.get(inst.id)
    if (
        prev is not None
        and type(prev).__qualname__ == cls.__qualname__
        and type(prev).__module__.split(".")[-1] == cls.__module__.split(".")[-1]
    ):
        return cls  # the same module imported twice (e.g. by a doctest collector): keep the first
    if not inst.id or inst.id in REGISTRY:
        raise ValueError(f"check id must be unique and non-empty, got {inst.id!r}")
    if inst.status not in STATUSES:
        raise ValueError(f"check {inst.id!r}: status must be one of {STATUSES}, got {inst.status!r}")
    REGISTRY[inst.id] = inst
    return cls


def all_checks() -> list[Check]:
    """Every registered check, in module order (imports the check modules)."""
    from . import checks  # noqa: F401  (imports register every check)

    return list(REGISTRY.values())


def run_check(check: Check, ctx: Context, *, on_error: Callable | None = None) -> Verdict:
    """Run one check; an exception becomes a failed verdict (never a silent pass)."""
    try:
        return check.run(ctx)
    except Exception as exc:  # noqa: BLE001 - a crash is a failure, reported
        if on_error is not None:
            on_error(check, exc)
        return error_verdict(check, exc)


def error_verdict(check: Check, exc: BaseException) -> Verdict:
    """The failed verdict of a check that raised ``exc`` (result NaN with an ``error:`` note, control not run)."""
    bad = Measurement(float("nan"), float("nan"), False, "<=", f"error: {type(exc).__name__}: {exc}")
    return Verdict(
        check.id,
        check.title,
        render_claim(check.claim),
        check.source,
        check.status,
        bad,
        Measurement(float("nan"), float("nan"), True, "<=", "not run"),
        check.control_description,
        0.0,
    )
