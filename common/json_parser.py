"""The JSON parser of every DRF endpoint, with nesting bounded before Python's decoder recurses."""

from __future__ import annotations

import io

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from common.jsontext import json_too_deep

# Far deeper than any body Canary takes (lineage and drift settings nest a few levels), far
# shallower than the decoder's recursion limit.
MAX_BODY_DEPTH = 64


class BoundedJSONParser(JSONParser):
    """DRF's JSONParser, answering 400 rather than 500 for a body nested too deep."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        data = stream.read() if stream is not None else b""
        try:
            text = data.decode(encoding)
        except (UnicodeDecodeError, LookupError) as error:
            message = f"JSON parse error - the body is not valid {encoding}: {error}"
            raise ParseError(message) from None
        where = json_too_deep(text, MAX_BODY_DEPTH)
        if where is not None:
            raise ParseError(
                f"JSON parse error - the body nests deeper than {MAX_BODY_DEPTH} levels "
                f"at character {where}"
            )
        return super().parse(io.BytesIO(data), media_type, parser_context)
