"""adapter-urban: onegrid's tasks to the 数字城管 system and its statuses back."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

from onegrid_adapter_urban.client import UrbanClient
from onegrid_common.adapters import AdapterUnit, DeliveryPolicy, adapter_service
from onegrid_common.service import Runtime, ServiceDefinition


class UrbanSettings(BaseSettings):
    """`ONEGRID_URBAN_*`: where the 数字城管 system is and which unit it serves."""

    model_config = SettingsConfigDict(env_prefix="ONEGRID_URBAN_", extra="ignore")

    unit_code: str = "urban"
    base_url: str = "http://127.0.0.1:8201"
    timeout_s: float = 10.0


def build(
    config: UrbanSettings | None = None, policy: DeliveryPolicy | None = None
) -> ServiceDefinition:
    def units(rt: Runtime) -> list[AdapterUnit]:
        cfg = config or UrbanSettings()
        return [AdapterUnit(cfg.unit_code, UrbanClient(cfg.base_url, timeout_s=cfg.timeout_s))]

    return adapter_service(
        "adapter-urban",
        units,
        policy=policy,
        description="数字城管 adapter: REST JSON with 大类/小类 event codes, status polled.",
    )


SERVICE = build()
