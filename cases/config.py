"""The case service's settings: ``YUJING_CASES_*`` environment variables (pydantic-settings).

The database and Kafka come from the main settings (``yujing/settings.py``, passed in)
(``YUJING_DATABASE_URL``, ``YUJING_BOOTSTRAP_SERVERS``, topic names).
"""

from __future__ import annotations

import secrets
from datetime import date
from functools import lru_cache

from pydantic import BaseModel, Field, HttpUrl, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from alerts.cases import ResponsePolicy, WorkingCalendar
from alerts.levels import LEVELS
from alerts.policy import AlertPolicy


class WebhookTarget(BaseModel):
    """An outside system to push new orange/red cases to (e.g. the 12345 hotline's work orders)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")
    url: HttpUrl
    secret: SecretStr = Field(description="Shared secret for the HMAC-SHA256 signature header.")
    levels: list[str] = Field(default_factory=lambda: ["orange", "red"])

    @field_validator("levels")
    @classmethod
    def _known_levels(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(LEVELS))
        if unknown:
            raise ValueError(f"unknown level(s) {unknown}; allowed: {', '.join(LEVELS)}")
        return value


class CaseSettings(BaseSettings):
    """Everything the case desk's operator can set; every field maps to ``YUJING_CASES_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="YUJING_CASES_", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8470, description="HTTP port of the API and the web inbox.")
    public_url: str = Field(
        default="http://127.0.0.1:8470",
        description="How staff and outside systems reach the service (links in webhooks).",
    )
    consumer_group: str = Field(default="yujing-cases", description="Kafka group reading warnings.")
    session_secret: SecretStr | None = Field(
        default=None,
        description="Signs the web inbox's login cookies. Unset: a random one per start "
        "(logins then end at a restart); set it in production.",
    )
    secure_cookies: bool | None = Field(
        default=None,
        description="Send login cookies over HTTPS only (Secure). Unset: when public_url is https://.",
    )
    login_max_failures: int = Field(default=5, ge=1, description="Wrong passwords per username, then a lockout.")
    login_address_max_failures: int = Field(
        default=30, ge=1, description="Failed logins per client address (any username), then a lockout.")
    login_window_minutes: float = Field(default=15.0, gt=0, description="Failures count within this window.")
    login_lockout_minutes: float = Field(default=15.0, gt=0, description="How long a lockout lasts.")
    case_level: str = Field(default="yellow", description="Lowest level that opens a case.")
    push_levels: list[str] = Field(default_factory=lambda: ["orange", "red"])
    response_hours: dict[str, float] = Field(
        default_factory=lambda: {"red": 4.0, "orange": 7.5, "yellow": 22.5, "blue": 75.0},
        description="Working hours within which a case at each level must be taken up.",
    )
    holidays: list[date] = Field(
        default_factory=list,
        description="Extra non-working days (China's public holidays come built in, through 2026+).",
    )
    extra_workdays: list[date] = Field(default_factory=list)
    webhooks: list[WebhookTarget] = Field(
        default_factory=list, description='JSON list: [{"name", "url", "secret", "levels"}].'
    )
    webhook_max_attempts: int = Field(default=10, ge=1, description="Then a push is marked failed.")
    webhook_backoff_seconds: float = Field(default=5.0, gt=0, description="First retry delay; doubles.")
    webhook_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    poll_seconds: float = Field(default=1.0, gt=0, description="How often the outbox is checked.")
    maintenance_seconds: float = Field(default=30.0, gt=0, description="Silence expiry checks.")

    @field_validator("case_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value not in LEVELS:
            raise ValueError(f"unknown level {value!r}; allowed: {', '.join(LEVELS)}")
        return value

    @field_validator("response_hours")
    @classmethod
    def _every_level(cls, value: dict[str, float]) -> dict[str, float]:
        missing = [level for level in LEVELS if level not in value]
        if missing:
            raise ValueError(f"response_hours needs every level; missing {missing}")
        return value

    def alert_policy(self) -> AlertPolicy:
        return AlertPolicy(case_level=self.case_level, push_levels=frozenset(self.push_levels))

    def response_policy(self) -> ResponsePolicy:
        calendar = WorkingCalendar(
            holidays=frozenset(self.holidays), extra_workdays=frozenset(self.extra_workdays)
        )
        return ResponsePolicy(working_hours=dict(self.response_hours), calendar=calendar)

    def cookies_secure(self) -> bool:
        """Secure cookies when asked, else whenever staff reach the desk over TLS."""
        if self.secure_cookies is not None:
            return self.secure_cookies
        return self.public_url.lower().startswith("https://")

    def cookie_secret(self) -> str:
        return self.session_secret.get_secret_value() if self.session_secret else _RANDOM_SECRET


_RANDOM_SECRET = secrets.token_urlsafe(32)


@lru_cache(maxsize=1)
def get_case_settings() -> CaseSettings:
    return CaseSettings()
