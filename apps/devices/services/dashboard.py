"""What the monitoring pages show: latest values, downsampled series and trends, read in bulk.

The clinic dashboard lists many patients: every read here takes all of them at once (a window
function for the latest values, one GROUP BY for the series), so a page costs the same number
of queries for 2 patients or 50. Series are bucket averages computed by the database, so a
heart-rate patch's month of readings stays a few hundred points.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import (
    Avg,
    BigIntegerField,
    Count,
    Exists,
    F,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Window,
)
from django.db.models.expressions import Func
from django.db.models.functions import RowNumber
from django.utils import timezone

from apps.records.models import Observation, Patient, Source

from ..models import SEVERITY_RANK, Alert, Device, Severity, ThresholdRule
from ..units import MEASUREMENTS
from .alerts import measurement_label
from .live import reading_status

SPARKLINE_PERIOD = dt.timedelta(hours=24)
SPARKLINE_BUCKET = 15 * 60  # seconds: at most 96 points per sparkline
MAX_CHART_POINTS = 500
# Chart periods (GET ?period=): length and bucket width, each under MAX_CHART_POINTS points.
PERIODS: dict[str, tuple[dt.timedelta, int]] = {
    "24h": (dt.timedelta(hours=24), 5 * 60),
    "7d": (dt.timedelta(days=7), 30 * 60),
    "30d": (dt.timedelta(days=30), 2 * 3600),
}
DEFAULT_PERIOD = "7d"
# UCUM codes as people write them.
PLAIN_UNITS = {"mm[Hg]": "mmHg", "Cel": "°C", "{beats}/min": "/min"}
# Sparkline drawing box (SVG user units).
SPARK_WIDTH = 120
SPARK_HEIGHT = 28


class EpochBucket(Func):
    """The number of the `seconds`-wide time bucket a timestamp falls in (PostgreSQL, SQLite)."""

    output_field = BigIntegerField()

    def __init__(self, expression: Any, seconds: int) -> None:
        self.width = int(seconds)  # an int of ours: safe to write into the SQL
        super().__init__(expression)

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> Any:  # type: ignore[override]
        # SQLite keeps UTC timestamps as text; strftime('%s') gives the epoch seconds.
        sql, params = compiler.compile(self.source_expressions[0])
        return f"(CAST(strftime('%%s', {sql}) AS INTEGER) / {self.width})", params

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        return f"FLOOR(EXTRACT(EPOCH FROM {sql}) / {self.width})::bigint", params


def _number(value: float) -> str:
    return f"{Decimal(str(value)).normalize():f}"


def plain_unit(unit: str) -> str:
    return PLAIN_UNITS.get(unit, unit)


def device_readings(sensitivities: Iterable[str]) -> QuerySet[Observation]:
    """Device readings of the supported measurements that the viewer's role may see."""
    return Observation.objects.filter(
        source=Source.DEVICE,
        code__system="http://loinc.org",
        code__code__in=list(MEASUREMENTS),
        sensitivity__in=list(sensitivities),
    )


def monitored(patients: QuerySet[Patient]) -> QuerySet[Patient]:
    """Patients with an active device or an active threshold rule, unhandled criticals first."""
    unhandled = Alert.objects.filter(patient=OuterRef("pk"), state__in=Alert.UNHANDLED)
    return (
        patients.filter(
            Exists(Device.objects.filter(patient=OuterRef("pk"), status=Device.Status.ACTIVE))
            | Exists(ThresholdRule.objects.filter(patient=OuterRef("pk"), active=True))
        )
        .annotate(
            has_critical=Exists(unhandled.filter(severity=Severity.CRITICAL)),
            has_unhandled=Exists(unhandled),
        )
        .order_by("-has_critical", "-has_unhandled", "family_name", "given_names", "pk")
    )


@dataclass
class Point:
    at: dt.datetime
    value: float


@dataclass
class Measurement:
    """One measurement of one patient: its latest value and recent points."""

    code: str
    label: str
    unit: str
    value: Decimal | None = None
    at: dt.datetime | None = None
    status: str = "normal"
    points: list[Point] = field(default_factory=list)

    @property
    def display_value(self) -> str:
        return f"{self.value.normalize():f}" if self.value is not None else ""

    @property
    def plain_unit(self) -> str:
        return plain_unit(self.unit)

    @property
    def spark_json(self) -> str:
        """The sparkline's points for the page's script: [[epoch ms, value], …]."""
        return json.dumps([[round(p.at.timestamp() * 1000), p.value] for p in self.points])

    @property
    def spark_low(self) -> str:
        return _number(min(p.value for p in self.points)) if self.points else ""

    @property
    def spark_high(self) -> str:
        return _number(max(p.value for p in self.points)) if self.points else ""


@dataclass
class PatientRow:
    patient: Patient
    measurements: list[Measurement]
    alerts: list[tuple[int, str]]  # the unhandled alerts: (id, severity)
    severity: str  # the highest severity of the unhandled alerts, "" if none

    @property
    def alert_count(self) -> int:
        return len(self.alerts)

    @property
    def alerts_attribute(self) -> str:
        """`id:severity` pairs for the page's script."""
        return " ".join(f"{pk}:{severity}" for pk, severity in self.alerts)


def _rules_by_patient(patient_ids: Sequence[int]) -> dict[tuple[int, str], list[ThresholdRule]]:
    rules: dict[tuple[int, str], list[ThresholdRule]] = defaultdict(list)
    for rule in ThresholdRule.objects.filter(patient_id__in=patient_ids, active=True):
        rules[(rule.patient_id, rule.code)].append(rule)
    return rules


def latest_values(
    patient_ids: Sequence[int], sensitivities: Iterable[str]
) -> dict[tuple[int, str], Observation]:
    """The newest device reading of each (patient, LOINC code), in one query."""
    rows = (
        device_readings(sensitivities)
        .filter(patient_id__in=patient_ids)
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("patient_id"), F("code_id")],
                order_by=[F("effective_at").desc(), F("pk").desc()],
            )
        )
        .filter(rank=1)
        .select_related("code")
    )
    return {(obs.patient_id, obs.code.code): obs for obs in rows}


def bucketed_series(
    patient_ids: Sequence[int],
    sensitivities: Iterable[str],
    since: dt.datetime,
    bucket_seconds: int,
) -> dict[tuple[int, str], list[Point]]:
    """Per (patient, code), the average of each time bucket since `since`, oldest first.

    One query; each point is placed at the bucket's last reading, so the newest point is the
    latest reading's time.
    """
    rows = (
        device_readings(sensitivities)
        .filter(patient_id__in=patient_ids, effective_at__gte=since)
        .annotate(bucket=EpochBucket("effective_at", bucket_seconds))
        .values("patient_id", "code__code", "bucket")
        .annotate(avg=Avg("value"), at=Max("effective_at"), n=Count("pk"))
        .order_by("patient_id", "code__code", "bucket")
    )
    series: dict[tuple[int, str], list[Point]] = defaultdict(list)
    for row in rows:
        series[(row["patient_id"], row["code__code"])].append(
            Point(at=row["at"], value=round(float(row["avg"]), 2))
        )
    return series


def _measurement(code: str) -> Measurement:
    info = MEASUREMENTS.get(code)
    return Measurement(code=code, label=measurement_label(code), unit=info.unit if info else "")


def dashboard_rows(patients: Sequence[Patient], sensitivities: Iterable[str]) -> list[PatientRow]:
    """The dashboard's card of each patient (four queries, whatever the number of patients)."""
    sensitivities = list(sensitivities)
    ids = [p.pk for p in patients]
    if not ids:
        return []
    latest = latest_values(ids, sensitivities)
    series = bucketed_series(
        ids, sensitivities, timezone.now() - SPARKLINE_PERIOD, SPARKLINE_BUCKET
    )
    rules = _rules_by_patient(ids)
    alerts: dict[int, list[Alert]] = defaultdict(list)
    for alert in Alert.objects.filter(patient_id__in=ids, state__in=Alert.UNHANDLED).order_by("pk"):
        alerts[alert.patient_id].append(alert)
    rows = []
    for patient in patients:
        codes = {code for pid, code in latest if pid == patient.pk}
        codes |= {code for pid, code in rules if pid == patient.pk}
        measurements = []
        for code in sorted(codes, key=_code_order):
            item = _measurement(code)
            obs = latest.get((patient.pk, code))
            if obs is not None:
                item.value, item.at, item.unit = obs.value, obs.effective_at, obs.unit
                item.status = reading_status(
                    obs.value, rules.get((patient.pk, code), ()), obs.interpretation
                )
            item.points = series.get((patient.pk, code), [])
            measurements.append(item)
        mine = alerts.get(patient.pk, [])
        severity = max((a.severity for a in mine), key=SEVERITY_RANK.__getitem__, default="")
        rows.append(PatientRow(patient, measurements, [(a.pk, a.severity) for a in mine], severity))
    return rows


def _code_order(code: str) -> int:
    """Measurements in the order of `MEASUREMENTS` (blood pressure first), unknown ones last."""
    order = list(MEASUREMENTS)
    return order.index(code) if code in order else len(order)


def sparkline_points(points: Sequence[Point], now: dt.datetime) -> str:
    """An SVG polyline's `points` over the last SPARKLINE_PERIOD (same drawing as the JS)."""
    if not points:
        return ""
    start = (now - SPARKLINE_PERIOD).timestamp()
    span = SPARKLINE_PERIOD.total_seconds()
    values = [p.value for p in points]
    low, high = min(values), max(values)
    spread = (high - low) or 1.0
    pad = 2
    coords = []
    for p in points:
        x = (p.at.timestamp() - start) / span * SPARK_WIDTH
        y = pad + (high - p.value) / spread * (SPARK_HEIGHT - 2 * pad)
        if low == high:
            y = SPARK_HEIGHT / 2
        coords.append(f"{max(0.0, min(SPARK_WIDTH, x)):.1f},{y:.1f}")
    return " ".join(coords)


# ---------------------------------------------------------------------------------------------
# One patient's monitoring tab


@dataclass
class Chart:
    code: str
    label: str
    unit: str
    points: list[Point]
    limits: list[dict[str, Any]] = field(default_factory=list)
    trend: dict[str, Any] | None = None

    @property
    def plain_unit(self) -> str:
        return plain_unit(self.unit)

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "label": self.label,
            "unit": plain_unit(self.unit),
            "points": [{"t": p.at.isoformat(), "v": p.value} for p in self.points],
            "limits": self.limits,
        }


def patient_charts(
    patient: Patient,
    sensitivities: Iterable[str],
    period: str,
    *,
    with_limits: bool,
    with_trends: bool,
    now: dt.datetime | None = None,
) -> list[Chart]:
    """A chart per measurement with device readings in the period (bucket averages)."""
    now = now or timezone.now()
    length, bucket = PERIODS[period]
    series = bucketed_series([patient.pk], sensitivities, now - length, bucket)
    codes = sorted((code for _pid, code in series), key=_code_order)
    charts = [
        Chart(
            code=code,
            label=measurement_label(code),
            unit=_measurement(code).unit,  # readings are stored in the canonical unit
            points=series[(patient.pk, code)],
        )
        for code in codes
    ]
    if with_limits:
        rules = _rules_by_patient([patient.pk])
        for chart in charts:
            chart.limits = [
                {
                    "kind": rule.kind,
                    "value": float(rule.limit),
                    "text": f"{rule.limit.normalize():f}",
                    "severity": rule.severity,
                }
                for rule in rules.get((patient.pk, chart.code), ())
                if rule.kind in (ThresholdRule.Kind.ABOVE, ThresholdRule.Kind.BELOW)
            ]
    if with_trends:
        trends = weekly_trends(patient, sensitivities, now)
        for chart in charts:
            chart.trend = trends.get(chart.code)
    return charts


def weekly_trends(
    patient: Patient, sensitivities: Iterable[str], now: dt.datetime | None = None
) -> dict[str, dict[str, Any]]:
    """Per code: the average of the last 7 days and of the 7 days before (one query)."""
    now = now or timezone.now()
    week = dt.timedelta(days=7)
    rows = (
        device_readings(sensitivities)
        .filter(patient=patient, effective_at__gte=now - 2 * week, effective_at__lte=now)
        .values("code__code")
        .annotate(
            this_week=Avg("value", filter=Q(effective_at__gt=now - week)),
            last_week=Avg("value", filter=Q(effective_at__lte=now - week)),
            unit=Max("unit"),
        )
        .order_by()
    )
    trends = {}
    for row in rows:
        trends[row["code__code"]] = {
            "this_week": _rounded(row["this_week"]),
            "last_week": _rounded(row["last_week"]),
            "unit": plain_unit(row["unit"]),
        }
    return trends


def _rounded(value: Decimal | None) -> str | None:
    """An average as people read it: whole numbers from 20 up, one decimal below."""
    if value is None:
        return None
    places = Decimal(1) if abs(value) >= 20 else Decimal("0.1")
    return f"{Decimal(value).quantize(places).normalize():f}"
