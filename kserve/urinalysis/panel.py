"""Urinalysis lab panels: analytes, accepted units, plausible ranges, and generated panels.

No torch here: the predictor, the demo and the tests use it. A panel is JSON:
``{"serum_creatinine": {"value": 1.4, "unit": "mg/dL"}, "ph": {"value": 6.0}, ...}``
(a bare number means the canonical unit).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Analyte:
    name: str
    unit: str                          # canonical unit
    low: float                         # plausible range in the canonical unit
    high: float
    other_units: tuple[tuple[str, float], ...] = ()  # (unit, factor to the canonical unit)


ANALYTES = (
    Analyte("age", "years", 0, 120),
    Analyte("specific_gravity", "1", 1.000, 1.040),
    Analyte("ph", "1", 4.0, 9.5),
    Analyte("protein", "mg/dL", 0, 2000, (("g/L", 100.0),)),
    Analyte("glucose", "mg/dL", 0, 2000, (("mmol/L", 18.016),)),
    Analyte("rbc", "/hpf", 0, 500),
    Analyte("wbc", "/hpf", 0, 500),
    Analyte("nitrite", "1", 0, 1),
    Analyte("albumin_creatinine_ratio", "mg/g", 0, 5000, (("mg/mmol", 8.84),)),
    Analyte("serum_creatinine", "mg/dL", 0.1, 25, (("umol/L", 1 / 88.4), ("µmol/L", 1 / 88.4))),
    Analyte("bun", "mg/dL", 1, 250, (("mmol/L", 2.801),)),
    Analyte("egfr", "mL/min/1.73m2", 1, 200),
)
TASKS = ("chronic_kidney_disease", "proteinuria", "acute_kidney_injury_risk", "urinary_tract_infection")
NAMES = tuple(a.name for a in ANALYTES)
SKEWED = ("protein", "glucose", "rbc", "wbc", "albumin_creatinine_ratio", "serum_creatinine", "bun")


def log1p_scale(values: np.ndarray, names=NAMES, skewed=SKEWED) -> np.ndarray:
    """log1p on the skewed analytes; training and the predictor normalise after this."""
    out = values.astype(np.float32).copy()
    for i, name in enumerate(names):
        if name in skewed:
            out[..., i] = np.log1p(out[..., i])
    return out


class PanelError(ValueError):
    """A panel that cannot be read: the message names the analyte and the problem (never the value)."""


def _units(a: Analyte) -> dict[str, float]:
    return {a.unit: 1.0, **dict(a.other_units), **({"": 1.0} if a.unit == "1" else {})}


def parse_panel(panel: dict) -> np.ndarray:
    """Canonical values of every analyte, in ``ANALYTES`` order; PanelError for anything wrong."""
    if not isinstance(panel, dict):
        raise PanelError("a panel is a JSON object of analyte -> {value, unit}")
    unknown = sorted(set(panel) - set(NAMES))
    if unknown:
        raise PanelError(f"unknown analyte(s) {unknown}; known: {list(NAMES)}")
    values = np.empty(len(ANALYTES), np.float32)
    for i, a in enumerate(ANALYTES):
        if a.name not in panel or panel[a.name] is None:
            raise PanelError(f"missing analyte {a.name!r} ({a.unit})")
        entry = panel[a.name]
        if isinstance(entry, dict):
            value, unit = entry.get("value"), entry.get("unit", a.unit)
        else:
            value, unit = entry, a.unit
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise PanelError(f"analyte {a.name!r}: value must be a number")
        factors = _units(a)
        if unit not in factors:
            raise PanelError(f"analyte {a.name!r}: unit {unit!r} not accepted; use one of {sorted(u for u in factors if u)}")
        canonical = float(value) * factors[unit]
        if not (a.low <= canonical <= a.high):
            raise PanelError(f"analyte {a.name!r}: out of the plausible range {a.low}-{a.high} {a.unit}")
        values[i] = canonical
    return values


def generate(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` generated panels (canonical values) and their four labels, from simple rules
    plus noise: demo data, not a clinical rule set."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(18, 90, n)
    kidney = rng.beta(2, 5, n)  # 0 healthy .. 1 failing
    egfr = np.clip(120 - 100 * kidney - 0.4 * (age - 40) + rng.normal(0, 8, n), 3, 180)
    creat = np.clip(0.8 * (90 / egfr) ** 0.9 + rng.normal(0, 0.1, n), 0.3, 20)
    bun = np.clip(12 + 60 * kidney ** 2 + rng.normal(0, 4, n), 2, 200)
    acr = np.clip(np.exp(rng.normal(2.3 + 4 * kidney, 0.8, n)), 0, 4900)
    protein = np.clip(acr * 0.12 + rng.normal(0, 8, n), 0, 1900)
    glucose = np.clip(rng.exponential(15, n) + (rng.random(n) < 0.15) * rng.uniform(100, 800, n), 0, 1900)
    infection = rng.random(n) < 0.2
    wbc = np.clip(rng.exponential(3, n) + infection * rng.uniform(10, 150, n), 0, 499)
    nitrite = (infection & (rng.random(n) < 0.7)) | (rng.random(n) < 0.03)
    rbc = np.clip(rng.exponential(2, n) + infection * rng.uniform(0, 20, n) + kidney * rng.uniform(0, 30, n), 0, 499)
    sg = np.clip(rng.normal(1.018, 0.006, n) - 0.008 * kidney, 1.001, 1.039)
    ph = np.clip(rng.normal(6.0, 0.7, n), 4.5, 9.0)
    recent_rise = rng.random(n) < 0.1  # creatinine risen vs baseline, seen as high BUN/creatinine
    bun = np.where(recent_rise, np.clip(bun * 2.2, 2, 240), bun)
    creat = np.where(recent_rise, np.clip(creat * 1.8, 0.3, 24), creat)
    x = np.stack([age, sg, ph, protein, glucose, rbc, wbc, nitrite.astype(float), acr, creat, bun, egfr], 1)
    y = np.stack([(egfr < 60) | (acr > 30),
                  (protein > 30) | (acr > 300),
                  (creat > 1.5) & (bun > 40),
                  (nitrite & (wbc > 10)) | (wbc > 40)], 1)
    flip = rng.random(y.shape) < 0.02
    return x.astype(np.float32), (y ^ flip).astype(np.float32)


def as_json(values: np.ndarray) -> str:
    """A panel JSON (canonical units) from canonical values."""
    return json.dumps({a.name: {"value": round(float(v), 4), "unit": a.unit} for a, v in zip(ANALYTES, values)})
