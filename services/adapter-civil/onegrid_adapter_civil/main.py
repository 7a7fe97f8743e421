"""adapter-civil: service applications (低保, 临时救助, 高龄补贴, 残疾人补贴) to the 民政
system; review results pulled from its batch status endpoint."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from onegrid_adapter_civil.client import CivilClient
from onegrid_common.adapters import AdapterUnit, DeliveryPolicy, adapter_service
from onegrid_common.pii import PiiCipher
from onegrid_common.service import Runtime, ServiceDefinition


class CivilSettings(BaseSettings):
    """`ONEGRID_CIVIL_*`: the 民政 system and the key that opens applicants sealed for it."""

    model_config = SettingsConfigDict(env_prefix="ONEGRID_CIVIL_", extra="ignore")

    unit_code: str = "civil"
    base_url: str = "http://127.0.0.1:8203"
    # "key_id:base64" pairs like ONEGRID_SECURITY_PII_KEYS; empty: those keys.
    pii_keys: SecretStr | None = None
    timeout_s: float = 10.0


def build(
    config: CivilSettings | None = None, policy: DeliveryPolicy | None = None
) -> ServiceDefinition:
    def units(rt: Runtime) -> list[AdapterUnit]:
        cfg = config or CivilSettings()
        keys = cfg.pii_keys or rt.settings.security.pii_keys
        cipher = PiiCipher.from_spec(keys.get_secret_value())
        return [
            AdapterUnit(cfg.unit_code, CivilClient(cfg.base_url, cipher, timeout_s=cfg.timeout_s))
        ]

    return adapter_service(
        "adapter-civil",
        units,
        policy=policy,
        description="民政 adapter: service applications with documents, batch status pulled.",
    )


SERVICE = build()
