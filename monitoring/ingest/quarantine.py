"""The quarantine: rejected records kept with their reasons, listed, downloaded and repaired."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from common.export import csv_stream
from factory.models import MLModel
from monitoring.ingest.services import Receipt, records_ingest
from monitoring.models import IngestBatch, QuarantinedRecord

# The columns of a quarantined record in the API: its list answer and its downloads alike.
EXPORT_COLUMNS = (
    "id",
    "batch_id",
    "kind",
    "index",
    "prediction_id",
    "code",
    "field",
    "message",
    "raw",
    "created_at",
    "resolved_at",
)
EXPORT_CHUNK_ROWS = 2_000  # rows fetched at a time while streaming a download


class AlreadyResolved(Exception):
    """The quarantined record was repaired before."""


@dataclass
class Resubmission:
    receipt: Receipt
    resolved: bool


def quarantine_list(
    *,
    model: MLModel,
    kind: str | None = None,
    code: str | None = None,
    batch_id: str | None = None,
    prediction_id: str | None = None,
    resolved: bool | None = False,
    start: datetime | None = None,
    end: datetime | None = None,
) -> QuerySet[QuarantinedRecord]:
    """The model's quarantined records, newest first; `resolved=None` means both."""
    records = QuarantinedRecord.objects.filter(model=model).select_related("batch")
    if kind:
        records = records.filter(kind=kind)
    if code:
        records = records.filter(code=code)
    if batch_id:
        records = records.filter(batch__public_id=batch_id)
    if prediction_id:
        records = records.filter(prediction_id=prediction_id)
    if resolved is not None:
        records = records.filter(resolved_at__isnull=not resolved)
    if start:
        records = records.filter(created_at__gte=start)
    if end:
        records = records.filter(created_at__lt=end)
    return records.order_by("-created_at", "-id")


def export_row(record: QuarantinedRecord) -> dict:
    return {
        "id": record.pk,
        "batch_id": str(record.batch.public_id),
        "kind": record.kind,
        "index": record.index,
        "prediction_id": record.prediction_id,
        "code": record.code,
        "field": record.field,
        "message": record.message,
        "raw": record.raw,
        "created_at": record.created_at.isoformat(),
        "resolved_at": record.resolved_at.isoformat() if record.resolved_at else None,
    }


def quarantine_codes(*, model: MLModel) -> list[str]:
    """The reasons the model's records were quarantined for, to filter by."""
    codes = QuarantinedRecord.objects.filter(model=model).values_list("code", flat=True)
    return sorted(set(codes.distinct()))


def quarantine_csv(records: QuerySet[QuarantinedRecord]) -> Iterator[str]:
    """CSV lines, one per record, read from the database in chunks; formula-like cells are
    disarmed, since a rejected record is exactly the text nobody checked."""
    rows = (export_row(r) for r in records.iterator(chunk_size=EXPORT_CHUNK_ROWS))
    cells = ([row[column] for column in EXPORT_COLUMNS] for row in rows)
    return csv_stream(EXPORT_COLUMNS, cells, lineterminator="\n")


def quarantine_ndjson(records: QuerySet[QuarantinedRecord]) -> Iterator[str]:
    """NDJSON lines; `record` is the raw content parsed, ready to fix and re-submit."""
    for record in records.iterator(chunk_size=EXPORT_CHUNK_ROWS):
        row = export_row(record)
        try:
            row["record"] = json.loads(record.raw)
        except (ValueError, RecursionError):  # not JSON, or nested too deep to read back
            row["record"] = None
        yield json.dumps(row, ensure_ascii=False) + "\n"


def quarantined_resubmit(
    *, quarantined: QuarantinedRecord, record, source: str = "", enqueue_jobs: bool = True
) -> Resubmission:
    """Ingest a corrected record through the normal service; resolve the old one if stored.

    A record that is now stored (accepted, or a duplicate of what is stored) resolves the
    quarantined one in the same transaction; one that is rejected again is quarantined anew.
    """
    with transaction.atomic():
        locked = QuarantinedRecord.objects.select_for_update().get(pk=quarantined.pk)
        if locked.resolved_at is not None:
            raise AlreadyResolved(locked.pk)
        receipt = records_ingest(
            model=locked.model,
            kind=locked.kind,
            records=[record],
            content_type="application/json",
            source=source,
            enqueue_jobs=enqueue_jobs,
        )
        resolved = receipt.accepted + receipt.duplicates == 1
        if resolved:
            batch_pk = IngestBatch.objects.get(public_id=receipt.batch_id).pk
            QuarantinedRecord.objects.filter(pk=locked.pk).update(
                resolved_at=timezone.now(), resolved_by_id=batch_pk
            )
    return Resubmission(receipt, resolved)
