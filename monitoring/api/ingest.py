"""Ingestion: prediction logs and outcomes, streamed in as JSON, NDJSON, CSV or Parquet."""

from __future__ import annotations

import io

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from accounts.models import Scope
from accounts.throttling import KeyRateThrottle
from config.problems import ApiProblem
from factory.api_base import ModelAPIView
from monitoring.api.serializers import PredictionBatchSerializer, ReceiptSerializer
from monitoring.ingest.parsers import (
    MEDIA_TYPES,
    BodyError,
    BodyTooLarge,
    LimitedBody,
    RecordLimitExceeded,
    parse_stream,
    records_capped,
)
from monitoring.ingest.services import records_ingest
from monitoring.models import RecordKind


class IngestView(ModelAPIView):
    kind = RecordKind.PREDICTIONS
    parser_classes = []  # the body is streamed by parse_stream, by content type
    throttle_classes = [KeyRateThrottle]

    @extend_schema(request=OpenApiTypes.OBJECT, responses=ReceiptSerializer)
    def post(self, request, **kwargs):
        media_type = (request.content_type or "").split(";")[0].strip().lower()
        if media_type not in MEDIA_TYPES:
            accepted = ", ".join(MEDIA_TYPES)
            raise ApiProblem(
                415, f"Content-Type {media_type or '(none)'!r} is not one of {accepted}"
            )
        limit_mb = settings.CANARY_MAX_UPLOAD_MB
        too_large = f"The body is over the limit of {limit_mb} MB."
        if int(request.META.get("CONTENT_LENGTH") or 0) > limit_mb * 1024 * 1024:
            raise ApiProblem(413, too_large)
        source = body_source(request._request)
        body = io.BufferedReader(LimitedBody(source, limit_mb * 1024 * 1024), 1 << 20)
        max_records = settings.CANARY_MAX_RECORDS
        records = records_capped(parse_stream(body, media_type, self.kind), max_records)
        try:
            receipt = records_ingest(
                model=self.model,
                kind=self.kind,
                records=records,
                content_type=media_type,
                source=getattr(request.auth, "name", ""),
            )
        except BodyError as error:
            raise ApiProblem(400, f"The body cannot be read: {error}.") from None
        except BodyTooLarge:
            raise ApiProblem(413, too_large) from None
        except RecordLimitExceeded:
            raise ApiProblem(
                413, f"More than {max_records} records in one request; split it."
            ) from None
        return Response(receipt.as_dict())


def body_source(request):
    """The request body as a stream, a chunked one included.

    Django reads CONTENT_LENGTH bytes, and a chunked body has none: it would read as empty.
    A server that de-chunks it and ends the stream (gunicorn, mod_wsgi: `wsgi.input_terminated`)
    is read to its end instead; any other server cannot tell where a chunked body ends (411).
    """
    environ = request.META
    if (
        environ.get("CONTENT_LENGTH")
        or "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    ):
        return request
    if not environ.get("wsgi.input_terminated"):
        raise ApiProblem(411, "Send a Content-Length: this server cannot read a chunked body.")
    return environ["wsgi.input"]


class PredictionIngestView(IngestView):
    kind = RecordKind.PREDICTIONS
    scopes = {"POST": Scope.PREDICTIONS_WRITE}

    @extend_schema(
        request={
            "application/json": PredictionBatchSerializer,
            "application/x-ndjson": OpenApiTypes.STR,
            "text/csv": OpenApiTypes.STR,
            "application/vnd.apache.parquet": OpenApiTypes.BINARY,
        },
        responses=ReceiptSerializer,
    )
    def post(self, request, **kwargs):
        return super().post(request, **kwargs)


class OutcomeIngestView(IngestView):
    kind = RecordKind.OUTCOMES
    scopes = {"POST": Scope.OUTCOMES_WRITE}
