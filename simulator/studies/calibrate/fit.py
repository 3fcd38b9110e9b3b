"""Fitting named constants (system/knobs.py) to measurements: which ones the data identifies,
a bounded robust least-squares fit on log-error, and leave-one-out predictions.

- Identifiability: each candidate's sensitivity column d log(prediction) / d constant is taken
  at the defaults by a finite step. Candidates are taken in a fixed priority order (bandwidths
  before latencies, end-to-end before the kernel fractions it scales); one is fitted only if
  its column moves some prediction by >= 0.1% and is not (within 10% of its norm) a combination
  of the columns already chosen. The others stay at their defaults, with the reason.
- Fit: scipy.optimize.least_squares (trust-region reflective, bounds = the knobs' physical
  bounds) on r_i = log(predicted_i / measured_i), soft-L1 loss with a 5% scale, so one noisy row
  cannot pull a constant far. Constants are scaled to O(1) (fractions, steps, microseconds).
- Identified: after the fit, a constant is trusted only if the data pin it from both sides. One
  that ends within a tenth of a probe step (0.002 of a fraction, 0.1 us, 0.1 ring step) of its
  bound is "at its bound; not identified by the data (default kept)": the data only say "this
  far or further" (e.g. an NVLS efficiency pushed to 0.02 so the model stops running NVLS).
  Otherwise a probe step up and one down from the fitted value (others at the fit: one-sided
  columns of the Jacobian) must each move some prediction by >= 0.1% (MIN_EFFECT); where one
  side moves none, the loss is flat that way (e.g. below the efficiency at which the model
  stops choosing the algorithm it scales) and the constant is not identified. Those go back to
  their defaults together and the rest is fitted again with them there. A constant that then
  moves by more than half a probe step was compensating for them (e.g. an NVLink efficiency
  lowered to slow an NVLS the data show did not run): its value depends on where constants the
  data do not fix are put, so it is not identified either; the rest is fitted again without it,
  until no constant moves (a bandwidth scale may take over what a dropped NVLink efficiency
  compensated). Repeated until none is flagged.
- Determination: then each constant's standard error (from the Jacobian and the residuals'
  variance; infinite where its column is zero); while the worst exceeds 25% of its value (or of
  one probe step), it goes back to its default and the rest is fitted again.
- Leave-one-out: refit from the defaults without each group of measurements (a row of a table:
  its out-of-place and in-place timings; a run) and predict the left-out group. Beyond
  MAX_LOO_GROUPS groups, neighbouring groups are left out together in MAX_LOO_GROUPS folds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simulator.system.knobs import knob

MIN_EFFECT = 1e-3  # a constant the data does not feel: no prediction moves by 0.1%
MIN_INDEPENDENT = 0.10  # share of a column's norm not explained by the chosen ones
LOSS, F_SCALE = "soft_l1", 0.05
MAX_LOO_GROUPS = 40
MAX_RELATIVE_ERROR = (
    0.25  # a fitted constant's standard error beyond this share of it: not determined
)
AT_BOUND = 0.1  # of one probe step: a fitted value this close to a bound is at it
NOT_IDENTIFIED = "not identified by the data (default kept)"
_SCALE = {"fraction": 1.0, "ratio": 1.0, "steps": 1.0, "s": 1e-6}
_PROBE = {"fraction": 0.02, "ratio": 0.02, "steps": 1.0, "s": 1.0}  # finite step, in scaled units


@dataclass(frozen=True, kw_only=True)
class Dataset:
    """Measurements and the model's prediction of them as a function of constants."""

    ids: tuple[str, ...]
    groups: tuple[str, ...]  # leave-one-out groups
    measured: np.ndarray
    predict: Callable[[dict[str, float]], np.ndarray]

    def subset(self, mask: np.ndarray) -> Dataset:
        keep = np.flatnonzero(mask)
        return Dataset(
            ids=tuple(self.ids[i] for i in keep),
            groups=tuple(self.groups[i] for i in keep),
            measured=self.measured[keep],
            predict=lambda v: self.predict(v)[keep],
        )


@dataclass(frozen=True, kw_only=True)
class Selection:
    chosen: tuple[str, ...]
    held: tuple[tuple[str, str], ...]  # (name, why it stayed at its default)
    # Where a chosen constant is seen: the probe that moved the predictions, when only one side
    # of the default did (the fit also starts there, off the flat side of a kink).
    seen_at: tuple[tuple[str, float], ...] = ()


def _scale(name: str) -> float:
    return _SCALE[knob(name).unit]


def _log_error(pred: np.ndarray, measured: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(pred, 1e-30) / measured)


def sensitivities(
    data: Dataset, names: list[str], defaults: dict[str, float]
) -> dict[str, np.ndarray]:
    """d log(prediction) per scaled unit of each constant, by a finite step up and one down from
    the defaults (within bounds), keeping the larger: a constant at a kink (a link that becomes
    the bottleneck only once it is slower) still shows its effect on one side."""
    return {name: col for name, (col, _) in _probe(data, names, defaults).items()}


def _probe(
    data: Dataset, names: list[str], defaults: dict[str, float]
) -> dict[str, tuple[np.ndarray, float]]:
    """Each constant's sensitivity column and the probed value it came from."""
    base = np.log(np.maximum(data.predict(defaults), 1e-30))
    out = {}
    for name in names:
        k, x, scale = knob(name), defaults[name] / _scale(name), _scale(name)
        cols = []
        for step in (_PROBE[k.unit], -_PROBE[k.unit]):
            value = (x + step) * scale
            if k.lower <= value <= k.upper:
                moved = dict(defaults, **{name: value})
                cols.append(((np.log(np.maximum(data.predict(moved), 1e-30)) - base) / step, value))
        out[name] = (
            max(cols, key=lambda c: float(np.max(np.abs(c[0]))))
            if cols
            else (np.zeros_like(base), defaults[name])
        )
    return out


def select(data: Dataset, candidates: list[str], defaults: dict[str, float]) -> Selection:
    """The candidates the data identifies, in priority order (see the module's docstring)."""
    probes = _probe(data, candidates, defaults)
    cols = {name: col for name, (col, _) in probes.items()}
    chosen: list[str] = []
    basis: list[np.ndarray] = []
    held = []
    limit = max(
        0, len(set(data.groups)) - 1
    )  # leave-one-out must still have more groups than constants
    for name in candidates:
        col = cols[name]
        effect = float(np.max(np.abs(col))) * abs(_PROBE[knob(name).unit])
        if effect < MIN_EFFECT:
            held.append(
                (name, "no measurement depends on it (a 2%/1 us/1-step change moves none by 0.1%)")
            )
            continue
        residual = col.copy()
        for q in basis:
            residual -= (q @ residual) * q
        share = float(np.linalg.norm(residual) / np.linalg.norm(col))
        if share < MIN_INDEPENDENT:
            held.append(
                (
                    name,
                    (
                        f"not separable from {', '.join(_partners(col, cols, chosen))}: the measurements "
                        "only constrain their combination"
                    ),
                )
            )
            continue
        if len(chosen) >= limit:
            held.append(
                (
                    name,
                    f"too few measurements ({len(set(data.groups))} groups) for another constant",
                )
            )
            continue
        chosen.append(name)
        basis.append(residual / np.linalg.norm(residual))
    seen_at = tuple(
        (n, probes[n][1]) for n in chosen if _one_sided(data, n, defaults, probes[n][1])
    )
    return Selection(chosen=tuple(chosen), held=tuple(held), seen_at=seen_at)


def _one_sided(data: Dataset, name: str, defaults: dict[str, float], probed: float) -> bool:
    """Whether the other side of the default moves nothing (the default sits on a kink)."""
    k = knob(name)
    other = 2 * defaults[name] - probed
    if not k.lower <= other <= k.upper:
        return False
    moved = data.predict(dict(defaults, **{name: other}))
    return (
        float(np.max(np.abs(np.log(np.maximum(moved, 1e-30) / data.predict(defaults)))))
        < MIN_EFFECT
    )


def _partners(col: np.ndarray, cols: dict[str, np.ndarray], chosen: list[str]) -> list[str]:
    """The chosen constants that explain most of a column (by least-squares weight)."""
    if not chosen:
        return ["nothing"]
    a = np.stack([cols[c] for c in chosen], axis=1)
    coef, *_ = np.linalg.lstsq(a, col, rcond=None)
    weight = np.abs(coef) * np.linalg.norm(a, axis=0)
    order = np.argsort(-weight)
    return [chosen[i] for i in order if weight[i] >= 0.2 * weight[order[0]]]


def fit(
    data: Dataset,
    names: tuple[str, ...],
    defaults: dict[str, float],
    start: dict[str, float] | None = None,
    seen_at: dict[str, float] | None = None,
) -> dict[str, float]:
    """The fitted values of `names` (the others at their defaults), from the defaults (moved to
    `seen_at` for constants at a kink, where a bottleneck changes) and from `start`, whichever
    ends lower: a start on the flat side of a kink would not move."""
    from scipy.optimize import (
        least_squares,
    )  # here: scipy takes ~0.7 s to import, every command paid it

    if not names:
        return dict(defaults)
    scale = np.array([_scale(n) for n in names])
    lower = np.array([knob(n).lower for n in names]) / scale
    upper = np.array([knob(n).upper for n in names]) / scale

    def residuals(x: np.ndarray) -> np.ndarray:
        return _log_error(
            data.predict(dict(defaults, **dict(zip(names, x * scale)))), data.measured
        )

    starts = [{**defaults, **(seen_at or {})}] + ([{**defaults, **start}] if start else [])
    best = None
    for s in starts:
        x0 = np.clip(np.array([s[n] for n in names]) / scale, lower, upper)
        result = least_squares(
            residuals,
            x0,
            bounds=(lower, upper),
            loss=LOSS,
            f_scale=F_SCALE,
            diff_step=1e-4,
            x_scale=1.0,
            max_nfev=100 * (len(names) + 1),
        )
        if best is None or result.cost < best.cost:
            best = result
    assert best is not None  # starts holds at least the defaults
    return dict(defaults, **{n: float(v) for n, v in zip(names, best.x * scale)})


def standard_errors(
    data: Dataset, names: tuple[str, ...], values: dict[str, float]
) -> dict[str, float]:
    """Each fitted constant's standard error from the Jacobian at the fit: s^2 (J^T J)^-1, s^2 the
    residuals' variance (n - k degrees of freedom); 0 where the residuals are 0."""
    if not names or len(data.measured) <= len(names):
        return {n: float("inf") for n in names}
    base = _log_error(data.predict(values), data.measured)
    cols = []
    for n in names:
        k, scale = knob(n), _scale(n)
        step = 1e-3 * max(abs(values[n]) / scale, _PROBE[k.unit]) * scale
        step = -step if values[n] + step > k.upper else step
        cols.append(
            (_log_error(data.predict(dict(values, **{n: values[n] + step})), data.measured) - base)
            / step
        )
    jac = np.stack(cols, axis=1)
    s2 = float(base @ base) / (len(base) - len(names))
    cov = s2 * np.linalg.pinv(jac.T @ jac)
    # pinv gives a zero variance to a zero column: a constant nothing depends on is not known at all.
    flat = (
        np.max(np.abs(jac), axis=0)
        * np.array([_PROBE[knob(n).unit] for n in names])
        * np.array([_scale(n) for n in names])
        < MIN_EFFECT * 1e-3
    )
    return {
        n: float("inf") if flat[i] else float(np.sqrt(max(cov[i, i], 0.0)))
        for i, n in enumerate(names)
    }


def unidentified(data: Dataset, names: tuple[str, ...], values: dict[str, float]) -> dict[str, str]:
    """The fitted constants the data do not pin, with the reason (see the module's docstring)."""
    base = np.log(np.maximum(data.predict(values), 1e-30))
    out = {}
    for name in names:
        k, v = knob(name), values[name]
        step = _PROBE[k.unit] * _scale(name)
        bound = min((k.lower, k.upper), key=lambda b: abs(v - b))
        if abs(v - bound) <= AT_BOUND * step:
            out[name] = (
                f"at its bound; {NOT_IDENTIFIED}: the fit put it at {_show(name, v)}, its bound "
                f"{_show(name, bound)}"
            )
            continue
        for direction, label in ((1, "up"), (-1, "down")):
            moved = min(max(v + direction * step, k.lower), k.upper)
            pred = data.predict(dict(values, **{name: moved}))
            effect = (
                float(np.max(np.abs(np.log(np.maximum(pred, 1e-30)) - base)))
                * step
                / abs(moved - v)
            )
            if effect < MIN_EFFECT:
                out[name] = (
                    f"{NOT_IDENTIFIED}: from the fit's {_show(name, v)}, moving it {label} moves no "
                    "prediction by 0.1%, so the data only bound it from one side"
                )
                break
    return out


def compensating(
    names: list[str], before: dict[str, float], after: dict[str, float], held: list[str]
) -> dict[str, str]:
    """The constants that moved by more than half a probe step when `held` went back to their
    defaults, with the reason."""
    out = {}
    for name in names:
        if abs(after[name] - before[name]) > 0.5 * _PROBE[knob(name).unit] * _scale(name):
            out[name] = (
                f"{NOT_IDENTIFIED}: it moved from {_show(name, before[name])} to {_show(name, after[name])} "
                f"when {', '.join(held)} went back to their defaults (it stood in for them)"
            )
    return out


def _show(name: str, value: float) -> str:
    return f"{value * 1e6:.3g} us" if knob(name).unit == "s" else f"{value:.4g}"


def relative_error(name: str, value: float, stderr: float) -> float:
    """A standard error against the constant's size (at least one probe step: 2%, 1 us, 1 step)."""
    k = knob(name)
    return stderr / max(abs(value), _PROBE[k.unit] * _scale(name))


def fit_determined(
    data: Dataset,
    selection: Selection,
    defaults: dict[str, float],
    start: dict[str, float] | None,
    max_relative_error: float = MAX_RELATIVE_ERROR,
) -> tuple[Selection, dict[str, float], dict[str, float]]:
    """Fit; put back at their defaults the constants the data do not identify (`unidentified`) and
    fit again, until none is; then drop the worst-determined constant while its standard error
    exceeds `max_relative_error` of its value, and fit again: (selection, values, standard errors)."""
    chosen, held, seen_at = list(selection.chosen), list(selection.held), dict(selection.seen_at)
    while True:
        values = fit(data, tuple(chosen), defaults, start, seen_at)
        flagged = unidentified(data, tuple(chosen), values)
        if flagged:
            not_pinned = list(flagged)
            while True:  # until no constant left moves: a stand-in's partner may take its place
                chosen = [n for n in chosen if n not in flagged]
                refit = fit(data, tuple(chosen), defaults, start, seen_at)
                more = compensating(chosen, values, refit, not_pinned)
                if not more:
                    break
                flagged.update(more)
            held += list(flagged.items())
            chosen = [n for n in chosen if n not in flagged]
            seen_at = {n: v for n, v in seen_at.items() if n not in flagged}
            continue
        errors = standard_errors(data, tuple(chosen), values)
        worst = max(chosen, key=lambda n: relative_error(n, values[n], errors[n]), default=None)
        if (
            worst is None
            or relative_error(worst, values[worst], errors[worst]) <= max_relative_error
        ):
            return (
                Selection(chosen=tuple(chosen), held=tuple(held), seen_at=tuple(seen_at.items())),
                values,
                errors,
            )
        rel = relative_error(worst, values[worst], errors[worst])
        held.append(
            (worst, f"poorly determined: the fit put it at {values[worst]:.4g} +- {100 * rel:.0f}%")
        )
        chosen.remove(worst)
        seen_at.pop(worst, None)


def loo_groups(groups: tuple[str, ...]) -> list[list[str]]:
    """The groups left out together: each alone, or neighbours in MAX_LOO_GROUPS folds."""
    unique = list(dict.fromkeys(groups))
    if len(unique) <= MAX_LOO_GROUPS:
        return [[g] for g in unique]
    folds = np.array_split(np.arange(len(unique)), MAX_LOO_GROUPS)
    return [[unique[i] for i in fold] for fold in folds]


def leave_one_out(
    data: Dataset,
    names: tuple[str, ...],
    defaults: dict[str, float],
    seen_at: dict[str, float] | None = None,
) -> np.ndarray:
    """Each measurement predicted by a fit (from the defaults) that did not see its group."""
    out = np.full(len(data.measured), np.nan)
    groups = np.array(data.groups)
    for left_out in loo_groups(data.groups):
        mask = ~np.isin(groups, left_out)
        if not mask.any():
            continue
        values = fit(data.subset(mask), names, defaults, seen_at=seen_at)
        out[~mask] = data.predict(values)[~mask]
    return out
