"""The notification service: `onegrid run notification`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from importlib.resources import files
from zoneinfo import ZoneInfo

import aiohttp

from onegrid_common.consumer import Subscription
from onegrid_common.pii import PiiCipher
from onegrid_common.registry_view.service_view import close_service_view, open_service_view
from onegrid_common.service import Runtime, ServiceDefinition
from onegrid_contracts.notify import NotificationRequested
from onegrid_notification import api, handlers, sender
from onegrid_notification.channels import PushGateway, SmsGateway, SmtpMailer, WebhookSender
from onegrid_notification.config import NotificationSettings
from onegrid_notification.db import store
from onegrid_notification.directory import NotifyDirectory, RegistryDirectory
from onegrid_notification.domain.planning import PlanContext
from onegrid_notification.domain.policy import QuietHours
from onegrid_notification.domain.templates import TemplateCatalogue

DirectoryFactory = Callable[[Runtime], Awaitable[NotifyDirectory]]


async def registry_directory(rt: Runtime) -> NotifyDirectory:
    return RegistryDirectory(await open_service_view(rt, "notification"))


def load_catalogue() -> TemplateCatalogue:
    return TemplateCatalogue.from_files(files("onegrid_notification") / "templates")


def make_service(
    *,
    config: NotificationSettings | None = None,
    directory: DirectoryFactory = registry_directory,
    clock: sender.Clock = sender.system_clock,
    run_sender: bool = True,
) -> ServiceDefinition:
    async def start(rt: Runtime) -> None:
        cfg = config or NotificationSettings()
        tz = ZoneInfo(rt.settings.city_timezone)
        found = await directory(rt)
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=cfg.send_timeout_s))
        rt.state["http"] = http
        secret = rt.settings.security.callback_hmac_secret.get_secret_value()
        rt.state["notifier"] = sender.Notifier(
            config=cfg,
            rendering=store.Rendering(load_catalogue(), cfg.sms_sign_name),
            plan_context=PlanContext(found, tz, cfg.survey_base_url, cfg.operators_desk),
            directory=found,
            cipher=PiiCipher.from_settings(rt.settings.security),
            channels=sender.Channels(
                sms=SmsGateway(
                    http, cfg.sms_url, cfg.sms_app_key, cfg.sms_app_secret.get_secret_value()
                ),
                push=PushGateway(http, cfg.push_url, cfg.push_api_key.get_secret_value()),
                webhook=WebhookSender(http, secret),
                mail=SmtpMailer(cfg.smtp_host, cfg.smtp_port, cfg.email_from, cfg.send_timeout_s),
            ),
            quiet_hours=QuietHours(cfg.quiet_start, cfg.quiet_end, tz) if cfg.quiet_start else None,
            clock=clock,
            redis=rt.redis,
        )

    async def stop(rt: Runtime) -> None:
        http = rt.state.get("http")
        if http is not None:
            await http.close()
        await close_service_view(rt)

    def subscriptions(rt: Runtime) -> Sequence[Subscription]:
        notifier = sender.notifier_of(rt)
        cfg = notifier.config
        queue = handlers.queue_notifications(notifier)
        on_event = handlers.on_case_event(handlers.notify_case_events(notifier, queue))
        return [
            Subscription(
                name="cases",
                topics=(cfg.cases_topic,),
                handlers={t.ce_type: on_event for t in handlers.CASE_EVENT_TYPES},
            ),
            Subscription(
                name="requests",
                topics=(cfg.requests_topic,),
                handlers={NotificationRequested.ce_type: handlers.on_request(queue)},
            ),
        ]

    return ServiceDefinition(
        name="notification",
        migrations=files("onegrid_notification.db") / "migrations",
        routers=[api.router],
        subscriptions=subscriptions,
        background=[sender.run] if run_sender else [],
        on_startup=[start],
        on_shutdown=[stop],
        uses_redis=True,
        description="Tells reporters, grid workers, unit heads and operators what happened, "
        "once, by SMS, e-mail, webhook or app push.",
    )


SERVICE = make_service()
