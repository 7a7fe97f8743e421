"""Sending policy: channel choice, quiet hours, backoff. Pure functions of their inputs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from onegrid_contracts.notify import NotifyChannel, RecipientKind, Urgency

# When neither the request nor the recipient's preference names channels.
DEFAULT_CHANNELS: dict[RecipientKind, tuple[NotifyChannel, ...]] = {
    RecipientKind.REPORTER: (NotifyChannel.SMS,),
    RecipientKind.STAFF: (NotifyChannel.APP_PUSH, NotifyChannel.SMS),
    RecipientKind.UNIT: (NotifyChannel.WEBHOOK, NotifyChannel.APP_PUSH, NotifyChannel.SMS),
    RecipientKind.OPERATORS: (NotifyChannel.EMAIL, NotifyChannel.APP_PUSH),
}


def choose_channels(
    kind: RecipientKind,
    requested: Sequence[NotifyChannel],
    preferred: Sequence[NotifyChannel] | None,
    *,
    has_webhook: bool,
) -> tuple[NotifyChannel, ...]:
    """Fallback order: the request's channels, else the recipient's preference, else the
    default of the recipient kind without a webhook when the recipient has registered
    none. A unit without a webhook would otherwise fail on it for every message and fill
    the dead letters with what is no delivery failure; a webhook named by a request or a
    preference is still tried, and fails visibly when it has no address."""
    if requested:
        return tuple(requested)
    if preferred:
        return tuple(preferred)
    defaults = DEFAULT_CHANNELS[kind]
    if has_webhook:
        return defaults
    return tuple(c for c in defaults if c is not NotifyChannel.WEBHOOK)


@dataclass(frozen=True)
class QuietHours:
    """Non-urgent messages wait while the city sleeps; a window may cross midnight."""

    start: time
    end: time
    timezone: ZoneInfo

    def defer_until(self, now: datetime, urgency: Urgency) -> datetime | None:
        """The end of the quiet window `now` is in (aware), or None: send now."""
        if urgency is Urgency.URGENT or self.start == self.end:
            return None
        local = now.astimezone(self.timezone)
        t = local.timetz().replace(tzinfo=None)
        crosses_midnight = self.start > self.end
        inside = (
            (t >= self.start or t < self.end) if crosses_midnight else (self.start <= t < self.end)
        )
        if not inside:
            return None
        end = datetime.combine(local.date(), self.end, tzinfo=self.timezone)
        if end <= local:
            end += timedelta(days=1)
        return end


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Delay before the next attempt after `attempt` failed ones: doubling, capped."""
    return float(min(max_s, base_s * 2 ** max(0, attempt - 1)))


def retry_in_s(
    attempt: int,
    *,
    max_attempts: int,
    base_s: float,
    max_s: float,
    permanent: bool,
    retry_after_s: float,
) -> float | None:
    """Delay before trying again after failed attempt `attempt`: the backoff, or longer
    when the provider asked for it; None when the row is done (a permanent failure, or the
    budget spent)."""
    if permanent or attempt >= max_attempts:
        return None
    return max(backoff_s(attempt, base_s, max_s), retry_after_s)


def rate_window(now: datetime) -> tuple[str, datetime]:
    """The per-recipient rate-limit window (one hour) `now` is in, and when it ends."""
    start = now.replace(minute=0, second=0, microsecond=0)
    return start.strftime("%Y%m%d%H"), start + timedelta(hours=1)
