"""One quarantined record: its reason and raw content, and re-submission after a fix through
the API's service (monitoring.ingest.quarantine.quarantined_resubmit)."""

from __future__ import annotations

import json

from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from accounts.roles import Role, role_required, user_has_role
from monitoring.ingest.quarantine import AlreadyResolved, quarantined_resubmit
from monitoring.models import QuarantinedRecord

MAX_RECORD_CHARS = 1_000_000  # one record; the API's body limit is far larger, a page's is not


def raw_pretty(raw: str) -> str:
    """The raw content indented when it is JSON, as sent otherwise (e.g. a CSV row)."""
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):  # a record quarantined for nesting too deep
        return raw


def record_parse(text: str) -> dict:
    """The edited record; ValueError with a message a person can act on."""
    if len(text) > MAX_RECORD_CHARS:
        raise ValueError(f"the record is over {MAX_RECORD_CHARS:,} characters")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"this is not JSON: {error}") from None
    except RecursionError:
        raise ValueError("the record nests too deep to read") from None
    if not isinstance(record, dict):
        raise ValueError("the record must be a JSON object ({...}), as in the API's body")
    return record


def record_context(request, record: QuarantinedRecord, text: str | None = None) -> dict:
    return {
        "model": record.model,
        "record": record,
        "text": raw_pretty(record.raw) if text is None else text,
        "can_edit": user_has_role(request.user, Role.EDITOR),
    }


def record_get(name: str, pk: int) -> QuarantinedRecord:
    records = QuarantinedRecord.objects.select_related("model", "batch", "resolved_by")
    return get_object_or_404(records, model__name=name, pk=pk)


@require_GET
@role_required(Role.VIEWER)
def quarantine_record_page(request, name: str, pk: int):
    record = record_get(name, pk)
    return render(request, "dashboard/quarantine_record.html", record_context(request, record))


@require_POST
@role_required(Role.EDITOR)
def quarantine_resubmit_form(request, name: str, pk: int):
    record = record_get(name, pk)
    text = request.POST.get("record", "")
    context = record_context(request, record, text)
    try:
        corrected = record_parse(text)
        result = quarantined_resubmit(
            quarantined=record, record=corrected, source=f"dashboard:{request.user.get_username()}"
        )
    except ValueError as error:
        context["problem"] = str(error)
        return render(request, "dashboard/quarantine_record.html", context, status=400)
    except AlreadyResolved:
        context["problem"] = "This record was already re-submitted and stored; nothing was sent."
        return render(request, "dashboard/quarantine_record.html", context, status=409)
    record.refresh_from_db()
    again = QuarantinedRecord.objects.filter(batch__public_id=result.receipt.batch_id).first()
    context.update(record=record, result=result, receipt=result.receipt, again=again)
    return render(request, "dashboard/quarantine_record.html", context)
