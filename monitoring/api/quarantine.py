"""The quarantine: rejected records listed, downloaded, and re-submitted once fixed."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.response import Response

from accounts.models import Scope
from config.problems import ApiProblem
from factory.api_base import ModelAPIView
from factory.models import MLModel
from monitoring.api.params import query_time
from monitoring.api.serializers import QuarantinedRecordSerializer, ResubmissionSerializer
from monitoring.ingest.quarantine import (
    AlreadyResolved,
    quarantine_csv,
    quarantine_list,
    quarantine_ndjson,
    quarantined_resubmit,
)
from monitoring.models import QuarantinedRecord, RecordKind

QUARANTINE_FILTERS = [
    OpenApiParameter("kind", str, enum=list(RecordKind.values)),
    OpenApiParameter("code", str, description="required, invalid or conflict"),
    OpenApiParameter("batch_id", OpenApiTypes.UUID, description="the batch_id of a receipt"),
    OpenApiParameter("prediction_id", str),
    OpenApiParameter("resolved", str, enum=["false", "true", "all"], description="default false"),
    OpenApiParameter("start", OpenApiTypes.DATETIME, description="quarantined at or after"),
    OpenApiParameter("end", OpenApiTypes.DATETIME, description="quarantined before"),
]
RESOLVED_FILTER = {"false": False, "true": True, "all": None}


def quarantine_filtered(request, model: MLModel) -> QuerySet[QuarantinedRecord]:
    params = request.query_params
    kind = params.get("kind") or None
    if kind and kind not in RecordKind.values:
        raise ApiProblem(400, "kind must be predictions or outcomes")
    resolved = params.get("resolved", "false")
    if resolved not in RESOLVED_FILTER:
        raise ApiProblem(400, "resolved must be false, true or all")
    batch_id = params.get("batch_id") or None
    if batch_id:
        try:
            uuid.UUID(batch_id)
        except ValueError:
            raise ApiProblem(400, f"batch_id {batch_id[:60]!r} is not a batch id") from None
    return quarantine_list(
        model=model,
        kind=kind,
        code=params.get("code") or None,
        batch_id=batch_id,
        prediction_id=params.get("prediction_id") or None,
        resolved=RESOLVED_FILTER[resolved],
        start=query_time(request, "start"),
        end=query_time(request, "end"),
    )


class QuarantinePagination(LimitOffsetPagination):
    default_limit = 100
    max_limit = 1000


class QuarantineListView(ModelAPIView, generics.ListAPIView):
    """Rejected records of a model, newest first, with their reasons and raw content."""

    serializer_class = QuarantinedRecordSerializer
    pagination_class = QuarantinePagination

    @extend_schema(parameters=QUARANTINE_FILTERS)
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return quarantine_filtered(self.request, self.model)


class QuarantineDownloadView(ModelAPIView):
    """The same records as a file: CSV or NDJSON, streamed."""

    media_type = "text/csv"

    @extend_schema(parameters=QUARANTINE_FILTERS, responses={(200, "text/csv"): OpenApiTypes.STR})
    def get(self, request, **kwargs):
        records = quarantine_filtered(request, self.model)
        if self.media_type == "text/csv":
            lines, suffix = quarantine_csv(records), "csv"
        else:
            lines, suffix = quarantine_ndjson(records), "ndjson"
        response = StreamingHttpResponse(lines, content_type=f"{self.media_type}; charset=utf-8")
        filename = f"{self.model.name}-quarantine.{suffix}"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


class QuarantineNdjsonView(QuarantineDownloadView):
    media_type = "application/x-ndjson"

    @extend_schema(
        parameters=QUARANTINE_FILTERS,
        responses={(200, "application/x-ndjson"): OpenApiTypes.STR},
    )
    def get(self, request, **kwargs):
        return super().get(request, **kwargs)


class QuarantineResubmitView(ModelAPIView):
    """Send a corrected record in place of a quarantined one; it resolves it once stored."""

    @property
    def scopes(self) -> dict:
        kind = (
            QuarantinedRecord.objects.filter(pk=self.kwargs.get("pk"))
            .values_list("kind", flat=True)
            .first()
        )
        write = Scope.OUTCOMES_WRITE if kind == RecordKind.OUTCOMES else Scope.PREDICTIONS_WRITE
        return {"POST": write}

    @extend_schema(request=OpenApiTypes.OBJECT, responses=ResubmissionSerializer)
    def post(self, request, pk, **kwargs):
        quarantined = get_object_or_404(QuarantinedRecord, model=self.model, pk=pk)
        record = request.data
        if not isinstance(record, dict):
            raise ApiProblem(400, "The body must be the corrected record, a JSON object.")
        try:
            result = quarantined_resubmit(
                quarantined=quarantined, record=record, source=getattr(request.auth, "name", "")
            )
        except AlreadyResolved:
            raise ApiProblem(409, f"Quarantined record {pk} is already resolved.") from None
        return Response({**result.receipt.as_dict(), "resolved": result.resolved})
