"""adapter-webhook: every department without a native adapter, one YAML entry per unit
(`ONEGRID_WEBHOOK_CONFIG` names the file)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from onegrid_adapter_webhook.api.webhooks import router
from onegrid_adapter_webhook.client import WebhookClient
from onegrid_adapter_webhook.config import WebhookConfig, load_config
from onegrid_common.adapters import AdapterUnit, DeliveryPolicy, adapter_service
from onegrid_common.service import Runtime, ServiceDefinition


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONEGRID_WEBHOOK_", extra="ignore")

    # Default: the local stack's file shipped with the package.
    config: str = str(Path(__file__).with_name("dev_units.yaml"))


def build(
    config: WebhookConfig | None = None, policy: DeliveryPolicy | None = None
) -> ServiceDefinition:
    def units(rt: Runtime) -> list[AdapterUnit]:
        cfg = config or load_config(WebhookSettings().config)
        rt.state["webhook_units"] = dict(cfg.units)
        return [AdapterUnit(code, WebhookClient(code, unit)) for code, unit in cfg.units.items()]

    return adapter_service(
        "adapter-webhook",
        units,
        policy=policy,
        routers=[router],
        description="Generic webhook adapter: any department, configured per unit in YAML.",
    )


SERVICE = build()
