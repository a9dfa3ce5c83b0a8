"""Ingestion: validate records, store the valid ones in bulk, quarantine the rest."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from types import SimpleNamespace

from django.conf import settings
from django.db import transaction

from common.sql import is_postgres
from factory.models import MLModel
from factory.services import versions_resolve
from monitoring.ingest.columnar import ColumnarChunk, ColumnarFallback
from monitoring.ingest.parsers import SpooledPredictions, Unreadable
from monitoring.ingest.records import Problem, outcome_validate, prediction_validate
from monitoring.ingest.store import outcomes_store, predictions_store
from monitoring.ingest.validate import EXPIRED, printable
from monitoring.models import IngestBatch, QuarantinedRecord, RecordKind
from monitoring.tasks import jobs_run_model

log = logging.getLogger(__name__)
MAX_ERRORS_LISTED = 100
CHUNK_RECORDS = 10_000  # records validated and stored at a time: about 10 MB of Python objects


@dataclass
class Receipt:
    batch_id: str = ""
    received: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    errors: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        body = {
            "batch_id": self.batch_id,
            "received": self.received,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "errors": self.errors[:MAX_ERRORS_LISTED],
        }
        if len(self.errors) > MAX_ERRORS_LISTED:
            body["errors_truncated"] = True
        return body

    def errors_add(self, rejections: list[Rejection]) -> None:
        """List the first errors; one more than shown is kept to know the list was cut."""
        for rejection in rejections:
            for problem in rejection.problems:
                if len(self.errors) > MAX_ERRORS_LISTED:
                    return
                self.errors.append(
                    {
                        "index": rejection.index,
                        "prediction_id": rejection.prediction_id,
                        "code": problem.code,
                        "field": problem.field,
                        "message": problem.message,
                    }
                )


@dataclass
class Rejection:
    index: int
    prediction_id: str
    problems: list[Problem]
    raw: str


def raw_text(record) -> str:
    """The record whole, so that it can be repaired and re-submitted."""
    if isinstance(record, Unreadable):
        return record.raw
    return json.dumps(record, default=str, ensure_ascii=False)


def record_id(record) -> str:
    if isinstance(record, dict) and isinstance(record.get("prediction_id"), str):
        return printable(record["prediction_id"])[:200]
    return ""


def records_validate(records: Iterable[tuple[int, object]], kind: str, *, start: int = 0):
    """Split (offset, record) pairs into valid rows (with their request index) and rejections."""
    validate = prediction_validate if kind == RecordKind.PREDICTIONS else outcome_validate
    rows, indexes, rejections = [], [], []
    for offset, record in records:
        index = start + offset
        if isinstance(record, Unreadable):
            problems = [Problem(record.code, "", record.message)]
            rejections.append(Rejection(index, "", problems, record.raw))
            continue
        row, problems = validate(record)
        if problems:
            rejections.append(Rejection(index, record_id(record), problems, raw_text(record)))
        else:
            rows.append(row)
            indexes.append(index)
    return rows, indexes, rejections


def records_ingest(
    *,
    model: MLModel,
    kind: str,
    records: Iterable,
    content_type: str = "application/json",
    source: str = "",
    enqueue_jobs: bool = True,
    first_index: int = 0,
) -> Receipt:
    """Store a request's records; answer with its receipt. All or nothing, durably.

    Records are taken CHUNK_RECORDS at a time, so memory is bounded by a chunk whatever the
    body's size. An exception from `records` (an unreadable body, too many records) rolls back
    every chunk already stored. `first_index` numbers the records of a file sent in parts.
    """
    with transaction.atomic():
        batch = IngestBatch.objects.create(
            model=model, kind=kind, content_type=content_type, source=source
        )
        receipt = Receipt(batch_id=str(batch.public_id))
        if columnar_readable(records):
            receipt = columnar_or_records(batch, kind, records, receipt, first_index)
        else:
            records_loop(batch, kind, records, receipt, first_index)
        batch.received, batch.accepted = receipt.received, receipt.accepted
        batch.duplicates, batch.rejected = receipt.duplicates, receipt.rejected
        batch.save(update_fields=["received", "accepted", "duplicates", "rejected"])
        if enqueue_jobs and receipt.accepted:
            transaction.on_commit(lambda: jobs_enqueue(model.pk))
    return receipt


def columnar_readable(records) -> bool:
    """Whether the records come as a body that may be read column-wise (COPY: PostgreSQL)."""
    return isinstance(records, SpooledPredictions) and is_postgres()


def jobs_enqueue(model_id: int) -> None:
    """Ask a worker to run the model's jobs; the records are committed whatever happens here.

    A broker that is down (or, in the embedded mode, a job that fails in-process) must not turn
    a committed request into an error: the beat schedule or `run_jobs` runs the jobs again.
    """
    try:
        jobs_run_model.delay(model_id)
    except Exception:  # the broker, or the job itself when tasks run in-process
        log.exception("the jobs of model %s were not run after ingestion", model_id)


def records_loop(batch: IngestBatch, kind: str, records, receipt: Receipt, first_index: int):
    iterator = iter(records)
    while chunk := list(islice(iterator, CHUNK_RECORDS)):
        chunk_ingest(batch, kind, list(enumerate(chunk)), len(chunk), receipt, first_index)


def columnar_or_records(
    batch: IngestBatch, kind: str, source: SpooledPredictions, receipt: Receipt, first_index: int
) -> Receipt:
    """Column-wise blocks when the body allows; else, from a clean slate, record by record."""
    try:
        with transaction.atomic():  # a savepoint: a fallback midway undoes the blocks stored
            for chunk in source.chunks():
                chunk_ingest(
                    batch, kind, chunk.others, len(chunk), receipt, first_index, columnar=chunk
                )
        return receipt
    except ColumnarFallback:
        receipt = Receipt(batch_id=receipt.batch_id)
        records_loop(batch, kind, source, receipt, first_index)
        return receipt


def chunk_ingest(
    batch: IngestBatch,
    kind: str,
    records: list[tuple[int, object]],
    size: int,
    receipt: Receipt,
    first_index: int = 0,
    columnar: ColumnarChunk | None = None,
) -> None:
    """Validate, store and quarantine one chunk of `size` records; add it to the receipt.

    `records` are (offset in the chunk, record) pairs; with `columnar`, the other rows of the
    chunk come already checked, column-wise.
    """
    model = batch.model
    start = first_index + receipt.received
    rows, indexes, rejections = records_validate(records, kind, start=start)
    if kind == RecordKind.PREDICTIONS:
        names = {row.model_version for row in rows} | (columnar.versions() if columnar else set())
        version_ids = versions_resolve(model=model, names=names)
        result = predictions_store(
            model_id=model.pk,
            batch_id=batch.pk,
            rows=rows,
            version_ids=version_ids,
            columnar=columnar,
        )
    else:
        result = outcomes_store(model_id=model.pk, batch_id=batch.pk, rows=rows)
    by_offset = dict(records)

    def stored_row(i: int) -> tuple[int, object, str]:
        """The request index, row and raw text of the i-th row handed to the store."""
        if i < len(rows):
            return indexes[i], rows[i], raw_text(by_offset[indexes[i] - start])
        k = i - len(rows)
        record = columnar.record(k)
        return start + columnar.good_offsets[k], SimpleNamespace(**record), raw_text(record)

    for i in result.conflicts:
        index, row, raw = stored_row(i)
        rejections.append(Rejection(index, row.prediction_id, [conflict_problem(kind, row)], raw))
    for i in result.expired:
        index, row, raw = stored_row(i)
        rejections.append(Rejection(index, row.prediction_id, [expired_problem(row)], raw))
    rejections.sort(key=lambda rejection: rejection.index)
    quarantine(batch, kind, rejections)
    receipt.received += size
    receipt.accepted += len(result.accepted)
    receipt.duplicates += len(result.duplicates)
    receipt.rejected += len(rejections)
    receipt.errors_add(rejections)


def conflict_problem(kind: str, row) -> Problem:
    if kind == RecordKind.PREDICTIONS:
        message = (
            f"prediction {row.prediction_id!r} is already stored with other content; "
            "predictions are immutable"
        )
    else:
        message = (
            f"an outcome for {row.prediction_id!r} observed at {row.observed_at.isoformat()} is "
            "already stored with other content; send a later observed_at to correct it"
        )
    return Problem("conflict", "prediction_id", message)


def expired_problem(row) -> Problem:
    """A prediction before the raw horizon: its hour's aggregates are sealed."""
    moment = row.timestamp.isoformat() if hasattr(row.timestamp, "isoformat") else row.timestamp
    message = (
        f"timestamp {moment} is older than the raw retention horizon "
        f"({settings.CANARY_RAW_RETENTION_DAYS} days): its hour is sealed and no longer aggregated"
    )
    return Problem(EXPIRED, "timestamp", message)


def quarantine(batch: IngestBatch, kind: str, rejections: list[Rejection]) -> None:
    QuarantinedRecord.objects.bulk_create(
        [
            QuarantinedRecord(
                batch=batch,
                model_id=batch.model_id,
                kind=kind,
                index=rejection.index,
                prediction_id=storable(rejection.prediction_id),
                code=rejection.problems[0].code,
                field=storable(rejection.problems[0].field),
                message=storable("; ".join(problem.message for problem in rejection.problems)),
                raw=storable(rejection.raw),
            )
            for rejection in rejections
        ],
        batch_size=1000,
    )


def storable(text: str) -> str:
    """Text PostgreSQL can store: NUL characters shown as U+FFFD, lone surrogates escaped."""
    return printable(text.replace("\x00", "\ufffd"))
