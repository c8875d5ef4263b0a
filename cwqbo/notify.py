"""Tell a webhook how a sync run went (`[profiles.NAME.notify]`): a JSON body any receiver can read, with a `text`
summary that Slack and Microsoft Teams incoming webhooks display as is.

Never prints and never raises into the sync: `notify_run` returns a one-line warning for the CLI to show when the
webhook could not be told, and logs it. The body carries run facts only (ids, counts, invoice numbers, reasons),
never a credential; the webhook URL (which may hold a token) is never logged or shown beyond its host.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:  # pragma: no cover
    from cwqbo.settings.config import NotifySettings
    from cwqbo.sync.model import SyncReport

log = logging.getLogger("cwqbo.notify")
TIMEOUT_SECONDS = 10.0
MAX_LISTED = 50  # failed invoices listed in the body (the count is always complete)


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What the webhook is told about: a finished run's report, or a run that stopped on an error."""

    profile: str
    report: SyncReport | None = None
    error: str | None = None  # the one-line error when the run could not complete (exit >= 2)
    exit_code: int = 0


def wanted(settings: NotifySettings, outcome: RunOutcome) -> bool:
    if not settings.webhook_url:
        return False
    if settings.on == "always":
        return True
    report = outcome.report
    return outcome.error is not None or (report is not None and not report.ok)


def status_of(outcome: RunOutcome) -> str:
    if outcome.error is not None:
        return "error"
    report = outcome.report
    if report is None or report.ok:
        return "ok"
    return "failed" if report.created == 0 and report.failed else "partial"


def body(outcome: RunOutcome) -> dict[str, Any]:
    """The JSON body: run id, profile, status, counts, failed invoices with reasons, and a `text` summary."""
    report = outcome.report
    status = status_of(outcome)
    failed = [i for i in (report.items if report else []) if i.outcome == "failed"]
    counts = {"created": report.created if report else 0, "failed": report.failed if report else 0,
              "skipped": report.skipped if report else 0}
    run_id = report.run_id if report else None
    head = f"cwqbo sync [{outcome.profile}] run {run_id if run_id is not None else '-'}: {status}"
    if outcome.error is not None:
        text = f"{head} — {outcome.error}"
    else:
        text = f"{head} — {counts['created']} sent to QuickBooks, {counts['failed']} failed, {counts['skipped']} skipped"
        if report is not None and report.batch_error:
            text += f"; ConnectWise batch problem: {report.batch_error}"
    lines = [f"• {i.number}: {i.error or 'failed'}" for i in failed[:MAX_LISTED]]
    if len(failed) > MAX_LISTED:
        lines.append(f"… and {len(failed) - MAX_LISTED} more (cwqbo history show {run_id} --failed)")
    if lines:
        text += "\n" + "\n".join(lines)
    return {
        "source": "cwqbo", "run_id": run_id, "profile": outcome.profile, "status": status,
        "exit_code": outcome.exit_code, "counts": counts,
        "batch_identifier": report.batch_identifier if report else None,
        "batch_error": report.batch_error if report else None, "error": outcome.error,
        "failed_invoices": [{"cw_id": i.cw_id, "number": i.number, "company": i.company, "total": _money(i.total),
                             "reason": i.error} for i in failed[:MAX_LISTED]],
        "failed_invoices_total": len(failed),
        "text": text,
    }


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def host_of(url: str) -> str:
    return urlsplit(url).netloc.rsplit("@", 1)[-1] or "the webhook"


def post(url: str, payload: dict[str, Any], *, timeout: float = TIMEOUT_SECONDS) -> None:
    """POST the payload; raises NotifyFailed with a one-line reason (never the URL's path or query)."""
    import httpx

    from cwqbo import http, money

    host = host_of(url)
    try:
        with http.new_client(timeout=timeout) as client:
            response = client.post(url, content=money.dumps(payload).encode("utf-8"),
                                   headers={"Content-Type": "application/json"})
    except httpx.HTTPError as exc:
        raise NotifyFailed(f"could not reach the webhook at {host} ({type(exc).__name__})") from None
    if response.status_code >= 300:
        raise NotifyFailed(f"the webhook at {host} answered HTTP {response.status_code}")


class NotifyFailed(Exception):
    """The webhook could not be told; the message is one line and safe to show."""


def notify_run(settings: NotifySettings, outcome: RunOutcome, *, timeout: float = TIMEOUT_SECONDS) -> str | None:
    """Post the run to the webhook when `settings.on` asks for it. Returns a warning line if that failed, else None.

    Never raises: a webhook problem must not change the sync's exit code or lose the run (already recorded).
    """
    if not wanted(settings, outcome):
        return None
    try:
        post(settings.webhook_url, body(outcome), timeout=timeout)
    except NotifyFailed as exc:
        log.warning("notification not sent: %s", exc)
        return f"notification not sent: {exc}"
    except Exception as exc:  # noqa: BLE001 - never let the notification break a finished sync
        log.warning("notification not sent: unexpected %s", type(exc).__name__, exc_info=exc)
        return f"notification not sent: unexpected {type(exc).__name__} (see the log)"
    log.info("notification sent to %s", host_of(settings.webhook_url))
    return None
