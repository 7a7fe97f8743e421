"""PII encryption (AES-256-GCM with key ids), masking and validation."""

from __future__ import annotations

import base64
import os

import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from onegrid_common.pii import (
    EncryptedValue,
    MobilePhone,
    PiiCipher,
    PiiDecryptError,
    PiiKeyError,
    ResidentIdNumber,
    id_number_check_char,
    is_valid_id_number,
    mask_id_number,
    mask_name,
    mask_phone,
    normalize_id_number,
    normalize_mobile,
)
from onegrid_common.settings import SecuritySettings

AAD = b"intake.reporter.phone:report-1"


def key_spec(*kids: str) -> str:
    return ",".join(f"{kid}:{base64.b64encode(os.urandom(32)).decode()}" for kid in kids)


def test_round_trip_through_the_compact_string() -> None:
    cipher = PiiCipher.from_spec(key_spec("k1"))
    value = cipher.encrypt("13812345678", associated_data=AAD)
    text = value.to_string()
    assert text.startswith("v1.k1.")
    assert "13812345678" not in text
    assert cipher.decrypt(text, associated_data=AAD) == "13812345678"
    assert EncryptedValue.parse(text) == value


def test_same_plaintext_encrypts_differently_each_time() -> None:
    cipher = PiiCipher.from_spec(key_spec("k1"))
    a = cipher.encrypt("张三", associated_data=AAD)
    b = cipher.encrypt("张三", associated_data=AAD)
    assert a.nonce != b.nonce
    assert a.ciphertext != b.ciphertext


def test_dev_settings_key_works() -> None:
    cipher = PiiCipher.from_settings(SecuritySettings())
    value = cipher.encrypt("420502199003071234", associated_data=AAD)
    assert cipher.decrypt(value, associated_data=AAD) == "420502199003071234"


def test_altered_ciphertext_is_detected() -> None:
    cipher = PiiCipher.from_spec(key_spec("k1"))
    value = cipher.encrypt("13812345678", associated_data=AAD)
    flipped = bytes([value.ciphertext[0] ^ 1]) + value.ciphertext[1:]
    with pytest.raises(PiiDecryptError, match="failed authentication"):
        cipher.decrypt(EncryptedValue(value.key_id, value.nonce, flipped), associated_data=AAD)


def test_value_copied_to_another_row_does_not_decrypt() -> None:
    cipher = PiiCipher.from_spec(key_spec("k1"))
    value = cipher.encrypt("13812345678", associated_data=AAD)
    with pytest.raises(PiiDecryptError):
        cipher.decrypt(value, associated_data=b"intake.reporter.phone:report-2")


def test_unknown_key_id_is_named() -> None:
    writer = PiiCipher.from_spec(key_spec("new"))
    reader = PiiCipher.from_spec(key_spec("old"))
    value = writer.encrypt("13812345678", associated_data=AAD)
    with pytest.raises(PiiDecryptError, match="unknown PII key id 'new'"):
        reader.decrypt(value, associated_data=AAD)


def test_same_key_id_with_another_key_fails_authentication() -> None:
    a = PiiCipher.from_spec(key_spec("k1"))
    b = PiiCipher.from_spec(key_spec("k1"))
    with pytest.raises(PiiDecryptError, match="failed authentication"):
        b.decrypt(a.encrypt("x", associated_data=AAD), associated_data=AAD)


def test_rotation_moves_values_to_the_first_key() -> None:
    old_spec = key_spec("2025")
    old = PiiCipher.from_spec(old_spec)
    stored = old.encrypt("13812345678", associated_data=AAD)
    both = PiiCipher.from_spec(key_spec("2026") + "," + old_spec)
    assert both.primary_key_id == "2026"
    assert both.decrypt(stored, associated_data=AAD) == "13812345678"
    assert both.needs_rotation(stored)
    rotated = both.rotate(stored, associated_data=AAD)
    assert rotated.key_id == "2026"
    assert not both.needs_rotation(rotated)
    assert both.rotate(rotated, associated_data=AAD) is rotated
    # The old key alone cannot read what was rotated.
    with pytest.raises(PiiDecryptError):
        old.decrypt(rotated, associated_data=AAD)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no PII keys"),
        ("k1", "key_id:base64key"),
        ("bad.id:" + base64.b64encode(b"0" * 32).decode(), "key_id"),
        ("k1:!!!", "not valid base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "AES-256 needs 32"),
        ("k1:{0},k1:{0}".format(base64.b64encode(b"0" * 32).decode()), "appears twice"),
    ],
)
def test_bad_key_configuration_is_explained(spec: str, message: str) -> None:
    with pytest.raises(PiiKeyError, match=message):
        PiiCipher.from_settings(SecuritySettings(pii_keys=SecretStr(spec)))


@pytest.mark.parametrize(
    "text", ["13812345678", "v2.k1.AAAA.BBBB", "v1.k1.!!.??", "v1.k1.AAAA.BBBB"]
)
def test_malformed_stored_value_is_a_clear_error(text: str) -> None:
    with pytest.raises(PiiDecryptError):
        EncryptedValue.parse(text)


def test_masks() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_id_number("42050219900307123X") == "420502********123X"
    assert mask_name("张三") == "张*"
    assert mask_name("欧阳娜娜") == "欧***"
    assert mask_name("王") == "*"
    assert mask_phone("12345") == "*****"


def test_id_number_checksum_gb11643() -> None:
    # The standard's own example number.
    assert id_number_check_char("11010519491231002") == "X"
    assert normalize_id_number("11010519491231002x") == "11010519491231002X"
    with pytest.raises(ValueError, match="check character"):
        normalize_id_number("110105194912310021")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1101051949123100", "17 digits"),
        ("11010519491331002X", "birth date"),
        ("11010518001231002X", "birth date"),
    ],
)
def test_bad_id_numbers_say_why(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalize_id_number(value)
    assert not is_valid_id_number(value)


def test_mobile_numbers_are_normalised_and_checked() -> None:
    assert normalize_mobile("+86 138-1234-5678") == "13812345678"
    assert normalize_mobile("008613812345678") == "13812345678"
    for bad in ("12812345678", "1381234567", "138123456789", "phone"):
        with pytest.raises(ValueError, match="mobile"):
            normalize_mobile(bad)


def test_pydantic_types_name_the_bad_field() -> None:
    class Reporter(BaseModel):
        phone: MobilePhone
        id_number: ResidentIdNumber | None = None

    assert Reporter(phone="138 1234 5678").phone == "13812345678"
    with pytest.raises(ValidationError) as info:
        Reporter(phone="123", id_number="110105194912310021")
    assert {e["loc"][0] for e in info.value.errors()} == {"phone", "id_number"}
