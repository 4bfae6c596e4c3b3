"""The JWT signing key set: Ed25519 keys by key id, one of them active.

Format (JSON, mounted from a Secret in the cluster)::

    {"active": "2026-11", "keys": [{"kid": "2026-11", "private_pem": "...", "public_pem": "..."},
                                   {"kid": "2026-08", "public_pem": "..."}]}

Rotation: add a new key and make it active; keep the old one (public part is enough)
until every token it signed has expired (the access token lifetime), then drop it.
Functions that only verify may be given a set without private keys.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medflow.ids import utcnow


@dataclass(frozen=True)
class SigningKey:
    kid: str
    public: Ed25519PublicKey
    private: Ed25519PrivateKey | None = None


class KeySet:
    def __init__(self, keys: list[SigningKey], active: str) -> None:
        self._keys = {k.kid: k for k in keys}
        if active not in self._keys or self._keys[active].private is None:
            raise ValueError("the active key id must name a key with its private part")
        self.active = active

    def signing_key(self) -> SigningKey:
        return self._keys[self.active]

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        key = self._keys.get(kid)
        return key.public if key else None

    @property
    def kids(self) -> list[str]:
        return sorted(self._keys)

    @staticmethod
    def from_json(text: str) -> "KeySet":
        raw = json.loads(text)
        keys = []
        for entry in raw["keys"]:
            private = (serialization.load_pem_private_key(entry["private_pem"].encode(), None)
                       if entry.get("private_pem") else None)
            public = (serialization.load_pem_public_key(entry["public_pem"].encode())
                      if entry.get("public_pem") else private.public_key())
            keys.append(SigningKey(entry["kid"], public, private))
        return KeySet(keys, raw["active"])


def new_key_entry(kid: str) -> dict[str, str]:
    private = Ed25519PrivateKey.generate()
    return {
        "kid": kid,
        "private_pem": private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode(),
        "public_pem": private.public_key().public_bytes(serialization.Encoding.PEM,
                                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
    }


def load_or_create(path: Path) -> KeySet:
    """Read the key set; the embedded default creates one (mode 600) the first time."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        kid = utcnow().strftime("%Y%m%d%H%M%S")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"active": kid, "keys": [new_key_entry(kid)]}, out)
    return KeySet.from_json(path.read_text())
