"""Reporter PII: AES-256-GCM encryption at rest, masking for events, format validation.

Keys come from `SecuritySettings.pii_keys` as "key_id:base64(32 bytes),key_id2:...": the
first key encrypts, every key decrypts, so rotation is "put the new key first, re-encrypt
(`PiiCipher.rotate`), then drop the old key". Always pass `associated_data` that ties the
value to its row and column (e.g. b"intake.reporter.phone:<report id>"), so a ciphertext
copied to another row fails to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Final, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import AfterValidator

from onegrid_common.settings import SecuritySettings

_VERSION: Final = "v1"
_NONCE_BYTES: Final = 12
_KEY_ID = re.compile(r"^[A-Za-z0-9_\-]{1,32}$")


class PiiKeyError(ValueError):
    """The key configuration is unusable."""


class PiiDecryptError(ValueError):
    """A value cannot be decrypted: malformed, unknown key id, or altered."""


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class EncryptedValue:
    key_id: str
    nonce: bytes
    ciphertext: bytes  # includes the 16-byte GCM tag

    def to_string(self) -> str:
        """Compact form for a text column: "v1.<kid>.<b64url nonce>.<b64url ct>"."""
        return f"{_VERSION}.{self.key_id}.{_b64e(self.nonce)}.{_b64e(self.ciphertext)}"

    @classmethod
    def parse(cls, text: str) -> Self:
        parts = text.split(".")
        if len(parts) != 4 or parts[0] != _VERSION:
            raise PiiDecryptError("not an encrypted PII value (expected 'v1.<kid>.<nonce>.<ct>')")
        _, kid, nonce_b64, ct_b64 = parts
        try:
            nonce, ciphertext = _b64d(nonce_b64), _b64d(ct_b64)
        except (binascii.Error, ValueError) as exc:
            raise PiiDecryptError("encrypted PII value is not valid base64url") from exc
        if len(nonce) != _NONCE_BYTES or len(ciphertext) < 16:
            raise PiiDecryptError("encrypted PII value has a wrong nonce or ciphertext length")
        return cls(key_id=kid, nonce=nonce, ciphertext=ciphertext)

    def __str__(self) -> str:
        return self.to_string()


def parse_keys(spec: str) -> dict[str, bytes]:
    """ "kid:base64key,kid2:..." as an ordered {kid: 32-byte key}; PiiKeyError when bad."""
    keys: dict[str, bytes] = {}
    for n, entry in enumerate(p.strip() for p in spec.split(",")):
        if not entry:
            continue
        kid, sep, encoded = entry.partition(":")
        kid = kid.strip()
        if not sep or not _KEY_ID.fullmatch(kid):
            raise PiiKeyError(
                f"PII key #{n + 1} must be 'key_id:base64key' with key_id of letters, "
                "digits, '_' or '-' (at most 32)"
            )
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise PiiKeyError(f"PII key {kid!r} is not valid base64") from exc
        if len(key) != 32:
            raise PiiKeyError(f"PII key {kid!r} is {len(key)} bytes; AES-256 needs 32")
        if kid in keys:
            raise PiiKeyError(f"PII key id {kid!r} appears twice")
        keys[kid] = key
    if not keys:
        raise PiiKeyError("no PII keys configured (ONEGRID_SECURITY_PII_KEYS)")
    return keys


class PiiCipher:
    """Encrypts with the first key; decrypts with whichever key id a value names."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        if not keys:
            raise PiiKeyError("PiiCipher needs at least one key")
        for kid, key in keys.items():
            if not _KEY_ID.fullmatch(kid) or len(key) != 32:
                raise PiiKeyError(f"PII key {kid!r} needs a simple id and 32 bytes")
        self._aead = {kid: AESGCM(key) for kid, key in keys.items()}
        self.primary_key_id = next(iter(keys))

    @classmethod
    def from_spec(cls, spec: str) -> Self:
        return cls(parse_keys(spec))

    @classmethod
    def from_settings(cls, settings: SecuritySettings) -> Self:
        return cls.from_spec(settings.pii_keys.get_secret_value())

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._aead)

    def encrypt(self, plaintext: str, *, associated_data: bytes) -> EncryptedValue:
        nonce = os.urandom(_NONCE_BYTES)
        aead = self._aead[self.primary_key_id]
        ciphertext = aead.encrypt(nonce, plaintext.encode("utf-8"), associated_data)
        return EncryptedValue(self.primary_key_id, nonce, ciphertext)

    def decrypt(self, value: EncryptedValue | str, *, associated_data: bytes) -> str:
        if isinstance(value, str):
            value = EncryptedValue.parse(value)
        aead = self._aead.get(value.key_id)
        if aead is None:
            raise PiiDecryptError(
                f"unknown PII key id {value.key_id!r}; configured: {', '.join(self.key_ids)}"
            )
        try:
            plaintext = aead.decrypt(value.nonce, value.ciphertext, associated_data)
        except InvalidTag as exc:
            raise PiiDecryptError(
                "PII value failed authentication: altered, or bound to other associated data"
            ) from exc
        return plaintext.decode("utf-8")

    def needs_rotation(self, value: EncryptedValue | str) -> bool:
        if isinstance(value, str):
            value = EncryptedValue.parse(value)
        return value.key_id != self.primary_key_id

    def rotate(self, value: EncryptedValue | str, *, associated_data: bytes) -> EncryptedValue:
        """The value under the primary key (unchanged when already there)."""
        if isinstance(value, str):
            value = EncryptedValue.parse(value)
        if not self.needs_rotation(value):
            return value
        plaintext = self.decrypt(value, associated_data=associated_data)
        return self.encrypt(plaintext, associated_data=associated_data)


# --- masking: what events and screens show instead of the value ---------------------------


def mask_phone(phone: str) -> str:
    """ "13812345678" -> "138****5678": first 3 and last 4 digits kept."""
    if len(phone) < 8:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]


def mask_id_number(id_number: str) -> str:
    """Resident ID: first 6 (region) and last 4 kept: "420502********123X"."""
    if len(id_number) < 11:
        return "*" * len(id_number)
    return id_number[:6] + "*" * (len(id_number) - 10) + id_number[-4:]


def mask_name(name: str) -> str:
    """ "张三" -> "张*", "欧阳娜娜" -> "欧***": the first character kept."""
    name = name.strip()
    if len(name) <= 1:
        return "*" * len(name)
    return name[0] + "*" * (len(name) - 1)


# --- validation ------------------------------------------------------------------------------

_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_ID_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK: Final = "10X98765432"


def normalize_mobile(phone: str) -> str:
    """A Chinese mobile number as 11 digits; spaces, '-' and a +86/0086 prefix dropped."""
    digits = re.sub(r"[\s\-]", "", phone)
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix):
            digits = digits[len(prefix) :]
    if not _MOBILE.fullmatch(digits):
        raise ValueError("not a Chinese mobile number (11 digits starting 13-19)")
    return digits


def id_number_check_char(first17: str) -> str:
    """The GB 11643-1999 check character of the first 17 digits."""
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def normalize_id_number(id_number: str) -> str:
    """An 18-character resident ID number (upper-case X), checked: digits, birth date, checksum."""
    value = id_number.strip().upper()
    if not re.fullmatch(r"\d{17}[\dX]", value):
        raise ValueError("a resident ID number is 17 digits and a digit or X")
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError as exc:
        raise ValueError("resident ID number has an impossible birth date") from exc
    if born.year < 1900 or born > date.today():
        raise ValueError("resident ID number has an impossible birth date")
    if id_number_check_char(value[:17]) != value[17]:
        raise ValueError("resident ID number check character is wrong (GB 11643)")
    return value


def is_valid_mobile(phone: str) -> bool:
    return _MOBILE.fullmatch(phone) is not None


def is_valid_id_number(id_number: str) -> bool:
    try:
        normalize_id_number(id_number)
    except ValueError:
        return False
    return True


# For pydantic models: a bad value is a 422 naming the field.
MobilePhone = Annotated[str, AfterValidator(normalize_mobile)]
ResidentIdNumber = Annotated[str, AfterValidator(normalize_id_number)]
