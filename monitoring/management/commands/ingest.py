from __future__ import annotations

import json
import sys
import time
from itertools import islice
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from factory.models import MLModel
from monitoring.ingest.parsers import BodyError, parse_stream
from monitoring.ingest.services import Receipt, records_ingest
from monitoring.models import RecordKind
from monitoring.tasks import jobs_run_model

FORMATS = {
    "csv": "text/csv",
    "ndjson": "application/x-ndjson",
    "jsonl": "application/x-ndjson",
    "json": "application/json",
    "parquet": "application/vnd.apache.parquet",
}


class Command(BaseCommand):
    help = (
        "Ingest a file of predictions or outcomes (CSV, NDJSON, JSON or Parquet; - for stdin) "
        "through the same service as the API, committing one batch at a time."
    )

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=RecordKind.values)
        parser.add_argument("file", help="a path, or - for stdin")
        parser.add_argument("--model", required=True, help="the model's name")
        parser.add_argument(
            "--format", choices=sorted(FORMATS), help="default: from the file's extension"
        )
        parser.add_argument("--batch-size", type=int, default=50_000, help="records per commit")

    def handle(self, *args, kind, file, model, format=None, batch_size=50_000, **options):
        found = MLModel.objects.filter(name=model).first()
        if found is None:
            raise CommandError(f"Unknown model {model!r}")
        media_type = FORMATS[format or file_format(file)]
        stream = sys.stdin.buffer if file == "-" else open_file(file)
        progress = Progress(self.stderr)
        try:
            receipt = file_ingest(found, kind, stream, media_type, batch_size, progress)
        except BodyError as error:
            raise CommandError(
                f"{file} cannot be read after {progress.total.received:,} records "
                f"(those are committed): {error}"
            ) from None
        finally:
            progress.done()
            if stream is not sys.stdin.buffer:
                stream.close()
        self.stdout.write(json.dumps(receipt))


def file_format(file: str) -> str:
    suffix = Path(file).suffix.lstrip(".").lower()
    if file == "-" or suffix not in FORMATS:
        raise CommandError("Give --format for stdin or a file without a known extension")
    return suffix


def open_file(file: str):
    try:
        return open(file, "rb")
    except OSError as error:
        raise CommandError(f"Cannot open {file}: {error.strerror}") from None


def file_ingest(model, kind, stream, media_type, batch_size, progress) -> dict:
    """Ingest in batches of `batch_size`; the jobs run once, at the end."""
    records = iter(parse_stream(stream, media_type, kind))
    total, batch_ids = progress.total, []
    while batch := list(islice(records, batch_size)):
        receipt = records_ingest(
            model=model,
            kind=kind,
            records=batch,
            content_type=media_type,
            source="cli",
            enqueue_jobs=False,
            first_index=total.received,
        )
        batch_ids.append(receipt.batch_id)
        receipt_add(total, receipt)
        progress.show()
    if total.accepted:
        jobs_run_model.delay(model.pk)
    return {
        **total.as_dict(),
        "batch_id": batch_ids[0] if batch_ids else "",
        "batch_ids": batch_ids,
    }


def receipt_add(total: Receipt, receipt: Receipt) -> None:
    total.received += receipt.received
    total.accepted += receipt.accepted
    total.duplicates += receipt.duplicates
    total.rejected += receipt.rejected
    total.errors += receipt.errors[: 101 - len(total.errors)]


class Progress:
    """One line on stderr: rows, rows/s, rejects; rewritten in place on a terminal."""

    def __init__(self, out):
        self.out = out
        self.total = Receipt()
        self.started = time.monotonic()
        self.tty = out.isatty()

    def show(self) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        line = (
            f"{self.total.received:,} rows  {self.total.received / elapsed:,.0f} rows/s  "
            f"{self.total.rejected:,} rejected  {self.total.duplicates:,} duplicates"
        )
        self.out.write(f"\r{line}" if self.tty else line, ending="" if self.tty else "\n")
        self.out.flush()

    def done(self) -> None:
        if self.tty:
            self.out.write("")
