"""Slack: an incoming-webhook message in blocks, one section per alert with its chart link.

The words come from monitoring.alerts.messages (the headline and summary the e-mail uses) and
the links from monitoring.alerts.links, so Slack says what the e-mail says. `text` is the
notification's fallback (what Slack shows in a phone's banner).
"""

from __future__ import annotations

from common.http import OutboundError, post_json
from monitoring.alerts.messages import Item, items_of, subject_line
from monitoring.alerts.transports.base import Transport, TransportError
from monitoring.models import NotificationKind

TIMEOUT_S = 10
HEADERS = {"User-Agent": "Canary"}
HEADER_LIMIT = 150  # Slack refuses a header block's text longer than this
TEXT_LIMIT = 3000  # and a section's text longer than this
MAX_ITEMS = 15  # alerts told in full: Slack takes at most 50 blocks (3 per alert, a header)
EMOJI = {
    NotificationKind.FIRING: ":rotating_light:",
    NotificationKind.REMINDER: ":bell:",
    NotificationKind.RESOLVED: ":white_check_mark:",
}


def clipped(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_escaped(text: str) -> str:
    """Slack's mrkdwn reads &, < and > as markup: a metric or segment name must not make a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def item_blocks(item: Item) -> list[dict]:
    """One alert: its headline, summary and top drivers, then buttons to the chart, the alert
    page and the window's rows."""
    headline = f"{EMOJI.get(item.kind, '')} *{slack_escaped(item.headline)}*".strip()
    text = f"{headline}\n{slack_escaped(item.summary)}\n_{slack_escaped(item.rule_words)}._"
    if item.drivers:
        lines = "".join(f"\n• {slack_escaped(driver)}" for driver in item.drivers)
        text += f"\n*What drives it*{lines}"
    buttons = [
        ("Open the chart", item.links.chart, "chart"),
        ("Alert page", item.links.page, "alert"),
        ("Rows of the window", item.links.rows, "rows"),
    ]
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": clipped(text, TEXT_LIMIT)}},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": label},
                    "url": url,
                    "action_id": f"{action}-{item.alert.pk}",
                }
                for label, url, action in buttons
            ],
        },
    ]


def slack_message(items: list[Item]) -> dict:
    """The message of an incoming webhook: a header, then each alert (divided)."""
    subject = subject_line(items)
    blocks: list[dict] = [
        {"type": "header", "text": {"type": "plain_text", "text": clipped(subject, HEADER_LIMIT)}}
    ]
    for index, item in enumerate(items[:MAX_ITEMS]):
        blocks += [{"type": "divider"}] if index else []
        blocks += item_blocks(item)
    if len(items) > MAX_ITEMS:
        link = f"<{items[0].links.alerts}|every alert of the model>"
        more = f"…and {len(items) - MAX_ITEMS} more: {link}"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    return {"text": subject, "blocks": blocks}


class SlackTransport(Transport):
    """POSTs a block message to the model's Slack incoming-webhook URL."""

    channel = "slack"

    def send(self, notifications) -> str:
        message = slack_message(items_of(notifications))
        try:
            post_json(self.target, message, timeout_s=TIMEOUT_S, headers=HEADERS)
        except OutboundError as error:
            raise TransportError(str(error), permanent=error.permanent) from error
        return message["text"]
