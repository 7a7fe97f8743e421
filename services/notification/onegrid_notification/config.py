"""Settings of the notification service (`ONEGRID_NOTIFICATION_*`)."""

from __future__ import annotations

from datetime import time

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class NotificationSettings(BaseSettings):
    """Where the channels are, and the sending policy. Defaults fit the local stack."""

    model_config = SettingsConfigDict(env_prefix="ONEGRID_NOTIFICATION_", extra="ignore")

    sms_url: str = "http://127.0.0.1:8221"
    sms_app_key: str = "onegrid-dev"
    sms_app_secret: SecretStr = SecretStr("onegrid-dev-sms-secret")
    sms_sign_name: str = "宜昌12345"  # shown as 【宜昌12345】 and counted in the SMS length
    push_url: str = "http://127.0.0.1:8222"
    push_api_key: SecretStr = SecretStr("onegrid-dev-push-key")
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8225
    email_from: str = "noreply@12345.yichang.example"
    operators_desk: str = "command-centre"
    operators_email: str | None = "command-centre@12345.yichang.example"
    survey_base_url: str = "https://12345.yichang.example/s"
    # Quiet hours in the city time zone (settings.city_timezone); an empty start
    # (`ONEGRID_NOTIFICATION_QUIET_START=`) or start == end: none.
    quiet_start: time | None = time(22, 0)
    quiet_end: time = time(7, 0)
    rate_limit_per_hour: int = Field(default=20, ge=1)
    max_attempts: int = Field(default=6, ge=1, le=100)
    backoff_base_s: float = Field(default=2.0, ge=0.0)
    backoff_max_s: float = Field(default=600.0, ge=0.0)
    # A row left in "sending" longer than this by a dead sender is claimed again.
    sending_lease_s: float = Field(default=60.0, gt=0.0)
    send_timeout_s: float = Field(default=10.0, gt=0.0)
    poll_interval_s: float = Field(default=0.5, gt=0.0)
    batch_size: int = Field(default=20, ge=1, le=500)
    # Tests and side-by-side stacks read their own topics.
    cases_topic: str = "cases.events.v1"
    requests_topic: str = "notify.requests.v1"

    @field_validator("quiet_start", mode="before")
    @classmethod
    def _empty_start_means_none(cls, value: object) -> object:
        return None if value == "" else value
