"""Report metrics of the closed loop (问题台账 → 整改 → 复核 → 销号) and of complaints, per unit and period.

Counted in SQL over ``problems`` and ``alarms`` (one grouped query each), for the metrics engine of
:mod:`gridwatch.reports` (its ``Context``: the scope's cells ``sc`` with their unit, the period's UTC bounds, now).

Definitions (HN-2024 §8(3) 清单式闭环管理; §10(4) 处理反馈):

* ``problems_found``: problems found in the period; ``problems_closed``: closed (销号) in the period.
* A problem with a deadline is *settled* once: when it is closed by its deadline (on time), or when its deadline
  passes without that (late, whether it is closed later or not). It counts in the period in which it settles, up
  to now. ``loop_due`` = problems settled in the period; ``loop_on_time`` = those closed by their deadline;
  ``closure_rate`` (闭环率) = ``loop_on_time / loop_due`` (empty when nothing settled);
  ``problems_overdue`` = ``loop_due − loop_on_time``: deadlines that passed in the period without closure.
* A problem **without a deadline** (no rectification days set for its category: the plans give none) can be
  neither on time nor late: it is **not in the rate's denominator** and is shown apart, as
  ``problems_no_deadline`` (found in the period without one). A dismissed problem (不成立) counts in neither.
* ``problem_repeats`` (屡查屡犯): problems found in the period that repeat an earlier one of the cell and category.
* ``complaints``: hotline alarms received in the period; ``complaints_answered``: of those, the ones whose outcome
  has reached the complainant's system (a webhook delivery sent), or, for a hotline without a webhook, whose
  task is closed (the outcome is there to read with ``GET /api/v1/alarms/{id}``).

Whether 闭环率 enters the ranking score is a local setting (``report_weights``, e.g. ``closure_rate=-10``: the score
ranks the lowest first, so a negative weight rewards closing on time); no plan gives a weight, and by default it
has none.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["loop_counts", "closure_rate", "complaint_counts", "LOOP_COLUMNS"]

#: the columns these metrics add, in order
LOOP_COLUMNS = ("problems_found", "problems_closed", "loop_due", "loop_on_time", "closure_rate",
                "problems_overdue", "problems_no_deadline", "problem_repeats", "complaints", "complaints_answered")


def loop_counts(ctx: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """Problems found, closed, settled (due), closed on time, overdue, without a deadline, and repeats per unit."""
    first, after = ctx.bounds
    settled_end = min(after, ctx.now)
    return ctx.query(
        ", pr AS (SELECT sc.unit_code, p.state, p.found_at, p.closed_at, p.deadline_at, p.repeat_of,"
        "   CASE WHEN p.state = 'closed' AND p.closed_at <= p.deadline_at THEN p.closed_at ELSE p.deadline_at END"
        "   AS settled_at FROM problems p JOIN sc ON sc.cell = p.cell WHERE p.state <> 'dismissed')"
        " SELECT unit_code,"
        "  count(*) FILTER (WHERE found_at >= ? AND found_at < ?) AS problems_found,"
        "  count(*) FILTER (WHERE state = 'closed' AND closed_at >= ? AND closed_at < ?) AS problems_closed,"
        "  count(*) FILTER (WHERE settled_at >= ? AND settled_at < ?) AS loop_due,"
        "  count(*) FILTER (WHERE settled_at >= ? AND settled_at < ? AND state = 'closed'"
        "   AND closed_at <= deadline_at) AS loop_on_time,"
        "  count(*) FILTER (WHERE found_at >= ? AND found_at < ? AND deadline_at IS NULL) AS problems_no_deadline,"
        "  count(*) FILTER (WHERE found_at >= ? AND found_at < ? AND repeat_of IS NOT NULL) AS problem_repeats"
        " FROM pr GROUP BY 1",
        [first, after, first, after, first, settled_end, first, settled_end, first, after, first, after])


def closure_rate(ctx: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """闭环率 = closed by the deadline / settled in the period; overdue = settled late."""
    due = frame.loop_due.astype(float)
    rate = np.where(due > 0, frame.loop_on_time / due.where(due > 0, 1), np.nan)
    return pd.DataFrame({"unit_code": frame.unit_code, "closure_rate": rate,
                         "problems_overdue": (frame.loop_due - frame.loop_on_time).astype("int64")})


def complaint_counts(ctx: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """Hotline complaints received in the period, and those answered (outcome delivered, or readable)."""
    first, after = ctx.bounds
    return ctx.query(
        ", sent AS (SELECT DISTINCT alarm_id FROM webhook_deliveries WHERE status = 'sent')"
        " SELECT sc.unit_code, count(*) AS complaints,"
        "  count(*) FILTER (WHERE a.id IN (SELECT alarm_id FROM sent) OR (i.webhook_url = '' AND t.state = 'closed'))"
        "  AS complaints_answered"
        " FROM alarms a JOIN sc ON sc.cell = a.cell JOIN integrations i ON i.id = a.integration_id"
        " LEFT JOIN tasks t ON t.id = a.task_id"
        " WHERE a.source = 'hotline' AND a.received_at >= ? AND a.received_at < ? GROUP BY 1", [first, after])
