"""What the aggregates say: metric series, drift, version comparison and sensitivity."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from config.problems import ApiProblem
from factory.api_base import ModelAPIView
from factory.models import Task
from monitoring.api.params import WINDOW_PARAMETERS, query_float, query_time, required
from monitoring.api.serializers import (
    ComparisonSerializer,
    DriftSerializer,
    ExplanationSerializer,
    MetricSeriesSerializer,
    SensitivitySerializer,
)
from monitoring.metrics.drift import DriftError
from monitoring.metrics.drift_report import drift_report
from monitoring.metrics.estimates import estimate_references
from monitoring.metrics.explain import explain
from monitoring.metrics.loss_estimates import loss_references
from monitoring.metrics.maturity import LabelMaturity, label_maturity_get
from monitoring.metrics.registry import metric_description
from monitoring.metrics.reports import comparison_report, sensitivity_report
from monitoring.metrics.series import Point, metric_series
from monitoring.metrics.windows import MetricError

METRIC_PARAMETER = OpenApiParameter("metric", str, required=True, description=metric_description())


class MetricsView(ModelAPIView):
    @extend_schema(
        parameters=[
            METRIC_PARAMETER,
            OpenApiParameter("start", OpenApiTypes.DATETIME),
            OpenApiParameter("end", OpenApiTypes.DATETIME),
            OpenApiParameter("granularity", str, enum=["hour", "day", "week"]),
            OpenApiParameter("version", str),
            OpenApiParameter("segment", str),
        ],
        responses=MetricSeriesSerializer,
    )
    def get(self, request, **kwargs):
        model = self.model
        metric = request.query_params.get("metric")
        if not metric:
            raise ApiProblem(400, "The metric parameter is required, e.g. ?metric=accuracy.")
        granularity = request.query_params.get("granularity", "day")
        version = request.query_params.get("version") or None
        segment = request.query_params.get("segment")
        try:
            points = metric_series(
                model=model,
                metric=metric,
                granularity=granularity,
                start=query_time(request, "start"),
                end=query_time(request, "end"),
                version=version,
                segment=segment,
            )
        except MetricError as error:
            raise ApiProblem(400, str(error)) from None
        maturity = label_maturity_get(
            model=model, now=timezone.now(), version=version, segment=segment
        )
        series = {"model": model.name, "metric": metric, "granularity": granularity}
        answer = {**series, "points": [point_with_maturity(p, maturity) for p in points]}
        if metric.partition(":")[0] in ("estimated", "estimation_gap"):
            answer["reference"] = (
                loss_references(model, version)
                if model.task == Task.REGRESSION
                else estimate_references(model, version)
            )
        return Response(MetricSeriesSerializer(answer).data)


def point_with_maturity(point: Point, maturity: LabelMaturity) -> dict:
    """A window's point with the share of its expected outcomes arrived and whether that
    makes it mature (monitoring.metrics.maturity)."""
    window = maturity.of_window(start=point.start, end=point.end, coverage=point.label_coverage)
    return {**vars(point), "maturity": window.share, "mature": window.mature}


class DriftView(ModelAPIView):
    @extend_schema(
        parameters=[
            *WINDOW_PARAMETERS,
            OpenApiParameter("reference_start", OpenApiTypes.DATETIME),
            OpenApiParameter("reference_end", OpenApiTypes.DATETIME),
            OpenApiParameter(
                "version",
                str,
                description="one version's predictions alone; default: the model's whole "
                "traffic, every version's predictions in both windows",
            ),
            OpenApiParameter("segment", str),
        ],
        responses=DriftSerializer,
    )
    def get(self, request, **kwargs):
        try:
            report = drift_report(
                model=self.model,
                start=query_time(request, "start"),
                end=query_time(request, "end"),
                reference_start=query_time(request, "reference_start"),
                reference_end=query_time(request, "reference_end"),
                version=request.query_params.get("version") or None,
                segment=request.query_params.get("segment"),
            )
        except DriftError as error:
            raise ApiProblem(400, str(error)) from None
        return Response(DriftSerializer(report).data)


class CompareView(ModelAPIView):
    @extend_schema(
        parameters=[
            METRIC_PARAMETER,
            OpenApiParameter("baseline", str, required=True),
            OpenApiParameter("candidate", str, required=True),
            *WINDOW_PARAMETERS,
            OpenApiParameter("segment", str),
            OpenApiParameter("alpha", float),
            OpenApiParameter("power", float),
        ],
        responses=ComparisonSerializer,
    )
    def get(self, request, **kwargs):
        try:
            comparison = comparison_report(
                model=self.model,
                metric=required(request, "metric", "accuracy"),
                baseline=required(request, "baseline", "1.0.0"),
                candidate=required(request, "candidate", "1.1.0"),
                start=query_time(request, "start"),
                end=query_time(request, "end"),
                segment=request.query_params.get("segment"),
                alpha=query_float(request, "alpha", 0.05, 0, 1),
                power=query_float(request, "power", 0.8, 0, 1),
            )
        except MetricError as error:
            raise ApiProblem(400, str(error)) from None
        return Response(ComparisonSerializer(comparison).data)


class SensitivityView(ModelAPIView):
    @extend_schema(
        parameters=[
            METRIC_PARAMETER,
            OpenApiParameter("granularity", str, enum=["hour", "day", "week"]),
            OpenApiParameter("alpha", float),
            OpenApiParameter("power", float),
            *WINDOW_PARAMETERS,
            OpenApiParameter("version", str),
            OpenApiParameter("segment", str),
        ],
        responses=SensitivitySerializer,
    )
    def get(self, request, **kwargs):
        try:
            sensitivity = sensitivity_report(
                model=self.model,
                metric=required(request, "metric", "accuracy"),
                granularity=request.query_params.get("granularity", "day"),
                alpha=query_float(request, "alpha", 0.05, 0, 1),
                power=query_float(request, "power", 0.8, 0, 1),
                start=query_time(request, "start"),
                end=query_time(request, "end"),
                version=request.query_params.get("version") or None,
                segment=request.query_params.get("segment"),
            )
        except MetricError as error:
            raise ApiProblem(400, str(error)) from None
        return Response(SensitivitySerializer(sensitivity).data)


class ExplainView(ModelAPIView):
    @extend_schema(
        description=(
            "Why a metric moved between a baseline window and a current one (whole UTC days): "
            "its change decomposed per slice of every segment, version and feature into mix "
            "and within effects (means over their n, value:NAME included) or ranked by impact "
            "(f1, macro_f1, rmse, roc_auc: the change minus the change without the slice; "
            "roc_auc's slices on 50 score bins, tested by DeLong; macro_f1's by a z-test on "
            "delta-method variances), each slice's p-value and Benjamini-Hochberg q-value. "
            "Defaults: the current window is the 7 days before the last prediction day, the "
            "baseline the days of the same length before it."
        ),
        parameters=[
            METRIC_PARAMETER,
            *WINDOW_PARAMETERS,
            OpenApiParameter("baseline_start", OpenApiTypes.DATETIME),
            OpenApiParameter("baseline_end", OpenApiTypes.DATETIME),
            OpenApiParameter("version", str),
            OpenApiParameter("segment", str),
        ],
        responses=ExplanationSerializer,
    )
    def get(self, request, **kwargs):
        try:
            explanation = explain(
                model=self.model,
                metric=required(request, "metric", "accuracy"),
                start=query_time(request, "start"),
                end=query_time(request, "end"),
                baseline_start=query_time(request, "baseline_start"),
                baseline_end=query_time(request, "baseline_end"),
                version=request.query_params.get("version") or None,
                segment=request.query_params.get("segment"),
            )
        except MetricError as error:
            raise ApiProblem(400, str(error)) from None
        return Response(ExplanationSerializer(explanation).data)
