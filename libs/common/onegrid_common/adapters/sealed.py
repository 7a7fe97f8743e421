"""Personal data sealed for one unit (DeptTaskAssigned.applicant): seal in dispatch, open
only in the unit's adapter.

The associated data binds a sealed value to its case and field, so a ciphertext copied to
another case or field does not open: `onegrid.applicant.<field>:<case id>`.
"""

from __future__ import annotations

import base64
from uuid import UUID

from onegrid_common.pii import EncryptedValue, PiiCipher
from onegrid_contracts.primitives import EncryptedValue as SealedValue


def applicant_aad(case_id: UUID, field: str) -> bytes:
    return f"onegrid.applicant.{field}:{case_id}".encode()


def seal(cipher: PiiCipher, plaintext: str, *, case_id: UUID, field: str) -> SealedValue:
    """`plaintext` sealed with the cipher's primary key, as the contract's EncryptedValue."""
    value = cipher.encrypt(plaintext, associated_data=applicant_aad(case_id, field))
    return SealedValue(
        key_id=value.key_id,
        nonce=base64.b64encode(value.nonce).decode("ascii"),
        ciphertext=base64.b64encode(value.ciphertext).decode("ascii"),
    )


def open_sealed(cipher: PiiCipher, value: SealedValue, *, case_id: UUID, field: str) -> str:
    """The plaintext; PiiDecryptError when the key is unknown or the value was altered."""
    raw = EncryptedValue(
        key_id=value.key_id,
        nonce=base64.b64decode(value.nonce),
        ciphertext=base64.b64decode(value.ciphertext),
    )
    return cipher.decrypt(raw, associated_data=applicant_aad(case_id, field))
