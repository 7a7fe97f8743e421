"""adapter-police: onegrid's tasks to the 接处警 system by webhook; its signed status
callbacks back (POST /v1/callbacks/{unit})."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from onegrid_adapter_police.api.callbacks import router
from onegrid_adapter_police.client import PoliceClient
from onegrid_common.adapters import AdapterUnit, DeliveryPolicy, adapter_service
from onegrid_common.service import Runtime, ServiceDefinition


class PoliceSettings(BaseSettings):
    """`ONEGRID_POLICE_*`: the 接处警 system, and how it reaches this adapter back."""

    model_config = SettingsConfigDict(env_prefix="ONEGRID_POLICE_", extra="ignore")

    unit_code: str = "police"
    base_url: str = "http://127.0.0.1:8202"
    # This adapter's own address as the police system sees it.
    callback_base_url: str = "http://127.0.0.1:8112"
    # Empty: the deployment's ONEGRID_SECURITY_CALLBACK_HMAC_SECRET.
    callback_secret: SecretStr | None = None
    timeout_s: float = 10.0


def build(
    config: PoliceSettings | None = None, policy: DeliveryPolicy | None = None
) -> ServiceDefinition:
    def units(rt: Runtime) -> list[AdapterUnit]:
        cfg = config or PoliceSettings()
        secret = cfg.callback_secret or rt.settings.security.callback_hmac_secret
        rt.state["police_secrets"] = {cfg.unit_code: secret.get_secret_value()}
        callback_url = f"{cfg.callback_base_url.rstrip('/')}/v1/callbacks/{cfg.unit_code}"
        client = PoliceClient(cfg.base_url, callback_url, timeout_s=cfg.timeout_s)
        return [AdapterUnit(cfg.unit_code, client)]

    return adapter_service(
        "adapter-police",
        units,
        policy=policy,
        routers=[router],
        description="接处警 adapter: incidents by webhook, HMAC-signed status callbacks.",
    )


SERVICE = build()
