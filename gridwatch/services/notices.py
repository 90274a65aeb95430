"""Notifications about new, nearly due and escalated tasks."""

from __future__ import annotations

from typing import Any

import pandas as pd

from gridwatch import notify
from gridwatch.config import Settings
from gridwatch.services._common import MANAGE_PEOPLE, Actor, require_region, require_system
from gridwatch.storage import Store


def notify_run(store: Store, actor: Actor, settings: Settings, *, channel: Any = None) -> dict[str, int]:
    """Announce new, due-soon and escalated tasks to their people through the configured webhook.

    Without a webhook URL the facts are still collected (and shown in the app), just not sent. A job or the
    command line runs it.
    """
    require_system(actor, "notify.run")
    found = notify.collect(store, due_soon_hours=float(settings.notify_due_soon_hours))
    channel = channel or notify.channel_from_settings(settings.notify_webhook_url, settings.notify_kind,
                                                      settings.notify_secret or None)
    sent = notify.deliver(store, channel) if channel is not None else {"sent": 0, "failed": 0, "pending": found}
    return {"collected": found, **sent}


def notifications(store: Store, actor: Actor, *, limit: int = 100) -> pd.DataFrame:
    """The latest notifications with their delivery outcome (for administrators of the region)."""
    require_region(store, actor, MANAGE_PEOPLE)
    return notify.notification_log(store, limit=limit)
