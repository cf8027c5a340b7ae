"""The one owner of secret values: the API mask, mask detection, scrubbing, Secret decoding and keyed hashes.

Pure functions, no I/O and no HTTP library. Every other module that touches a secret value goes through here.
Callers:

* ``goldrush_operator.goldrush_api.client`` refuses bodies that carry the API's read mask (:func:`find_masks`) and
  scrubs every error message with the secret values of the request body (:func:`secret_values`,
  :class:`Redactor`);
* the operator scrubs API error text before it reaches Kubernetes conditions, Events and logs
  (:func:`scrub`, :class:`Redactor`), refuses the mask in a desired payload (:func:`find_masks`), decodes
  Secret data (:func:`decode_secret_data`) and keys the hashes it keeps in ``status.secrets``
  (:func:`secret_hash`, :func:`object_hmac_key`).

Secret fields of a pipeline payload (:data:`SECRET_FIELD_PATHS`):
``destination_config.password``, ``destination_config.secret_access_key``,
``destination_config.sasl.password`` and every value of ``destination_config.headers``
(``*`` in a path means "every key of this mapping").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

__all__ = [
    "HASH_PREFIX",
    "MASK",
    "REDACTED",
    "SECRET_FIELD_PATHS",
    "Redactor",
    "decode_secret_data",
    "find_masks",
    "object_hmac_key",
    "scrub",
    "scrub_fields",
    "secret_hash",
    "secret_values",
]

MASK: Final = "******"
"""The literal the GoldRush API returns in place of a secret value on every read."""

REDACTED: Final = "[REDACTED]"
"""What :func:`scrub` puts in place of a secret."""

HASH_PREFIX: Final = "hmac-sha256:"
DEFAULT_PEPPER: Final = "goldrush-operator/secret-hash/v1"

SECRET_FIELD_PATHS: Final[tuple[tuple[str, ...], ...]] = (
    ("destination_config", "password"),
    ("destination_config", "secret_access_key"),
    ("destination_config", "sasl", "password"),
    ("destination_config", "headers", "*"),
)
"""Paths (as key tuples) of the secret fields of a pipeline payload; ``*`` = every key of that mapping."""

# Field names whose quoted JSON value is scrubbed from free text even when the value is not known.
_SECRET_KEY_RE: Final = re.compile(
    r'(?P<key>\\?"(?:password|secret_access_key)\\?"\s*:\s*)(?P<val>\\?"(?:[^"\\]|\\.)*?\\?")'
)
_HEADERS_RE: Final = re.compile(r'(?P<key>\\?"headers\\?"\s*:\s*)\{(?P<body>[^{}]*)\}')
_HEADER_VALUE_RE: Final = re.compile(
    r'(?P<key>\\?"(?:[^"\\]|\\.)*?\\?"\s*:\s*)(?P<val>\\?"(?:[^"\\]|\\.)*?\\?")'
)


def _walk(node: Any, path: tuple[str, ...]) -> Iterator[tuple[Mapping[str, Any], str]]:
    """Yield ``(parent mapping, key)`` for every existing leaf that ``path`` addresses in ``node``."""
    if not path or not isinstance(node, Mapping):
        return
    head, rest = path[0], path[1:]
    keys = list(node.keys()) if head == "*" else ([head] if head in node else [])
    for key in keys:
        if rest:
            yield from _walk(node[key], rest)
        else:
            yield node, key


def _as_secret_text(value: Any) -> str | None:
    """The text form of a secret leaf value, or None when it cannot carry a secret."""
    if value is None or isinstance(value, bool | Mapping | list | tuple):
        return None
    text = value if isinstance(value, str) else str(value)
    return text if text and text != MASK else None


def secret_values(payload: Mapping[str, Any]) -> set[str]:
    """Return the set of non-empty secret values found at :data:`SECRET_FIELD_PATHS` in ``payload``.

    The API mask itself is not a secret and is left out. Numbers are returned in their ``str`` form.
    """
    found: set[str] = set()
    for path in SECRET_FIELD_PATHS:
        for parent, key in _walk(payload, path):
            text = _as_secret_text(parent[key])
            if text is not None:
                found.add(text)
    return found


def _encoded_forms(secret: str) -> set[str]:
    """Forms in which ``secret`` may appear in text: raw, JSON-escaped (once and twice), percent-encoded; and
    with its whitespace trimmed or collapsed (a value read from a file often ends in a newline, and error text
    is shown on one line)."""
    forms = {secret, secret.strip(), " ".join(secret.split())}
    once_ascii = json.dumps(secret)[1:-1]
    once_utf8 = json.dumps(secret, ensure_ascii=False)[1:-1]
    forms.update({once_ascii, once_utf8, json.dumps(once_ascii)[1:-1], json.dumps(once_utf8)[1:-1]})
    forms.add(urllib.parse.quote(secret, safe=""))
    forms.add(urllib.parse.quote_plus(secret, safe=""))
    return {form for form in forms if form}


def scrub_fields(text: str) -> str:
    """Replace the quoted JSON values of secret-named fields in ``text`` with :data:`REDACTED`.

    Covers ``"password": "..."``, ``"secret_access_key": "..."`` (also with backslash-escaped quotes, as in
    JSON embedded in a JSON string) and every value of a ``"headers": {...}`` object. Used when the secret
    values themselves are not known (for example a server echoing a stored value).
    """

    def _headers(match: re.Match[str]) -> str:
        body = _HEADER_VALUE_RE.sub(lambda m: f'{m.group("key")}"{REDACTED}"', match.group("body"))
        return f"{match.group('key')}{{{body}}}"

    text = _SECRET_KEY_RE.sub(lambda m: f'{m.group("key")}"{REDACTED}"', text)
    return _HEADERS_RE.sub(_headers, text)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with every secret value and every secret-named field value replaced by ``[REDACTED]``.

    Each secret (length >= 1; longest first, so a secret containing another is removed whole) is replaced
    in its raw, JSON-escaped and percent-encoded forms; then :func:`scrub_fields` runs.
    """
    return Scrubber(secrets)(text)


class Scrubber:
    """`scrub` with the encoded forms of a fixed set of secrets computed once (one per reconcile pass)."""

    __slots__ = ("_forms",)

    def __init__(self, secrets: Iterable[str]) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if secret:
                forms |= _encoded_forms(secret)
        self._forms = sorted(forms, key=lambda f: (-len(f), f))

    def __call__(self, text: str) -> str:
        if not text:
            return text
        for form in self._forms:
            if form in text:
                text = text.replace(form, REDACTED)
        return scrub_fields(text)



def find_masks(payload: Any, _prefix: str = "") -> list[str]:
    """Return the dotted paths of every string in ``payload`` (any depth) that contains :data:`MASK`.

    Keys containing the mask are reported too. List items appear as ``[index]``.
    """
    found: list[str] = []
    if isinstance(payload, str):
        if MASK in payload:
            found.append(_prefix or "<body>")
    elif isinstance(payload, Mapping):
        for key, value in payload.items():
            path = f"{_prefix}.{key}" if _prefix else str(key)
            if isinstance(key, str) and MASK in key:
                found.append(path)
            found.extend(find_masks(value, path))
    elif isinstance(payload, list | tuple):
        for index, value in enumerate(payload):
            found.extend(find_masks(value, f"{_prefix}[{index}]"))
    return found


class Redactor:
    """A growing set of known secret values that scrubs text; its repr never shows them.

    ``add()`` and ``add_payload()`` extend it in place; ``with_payload()`` returns an extended copy (used per
    request so that one request's body secrets do not leak into another's state).
    """

    __slots__ = ("_secrets",)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = {s for s in secrets if s}

    def add(self, *secrets: str) -> None:
        """Remember more secret values (empty strings are ignored)."""
        self._secrets.update(s for s in secrets if s)

    def add_payload(self, payload: Mapping[str, Any]) -> None:
        """Remember the secret values of a pipeline payload (see :func:`secret_values`)."""
        self._secrets |= secret_values(payload)

    def with_payload(self, payload: Mapping[str, Any] | None) -> Redactor:
        """Return a copy that also knows the secret values of ``payload``."""
        child = Redactor(self._secrets)
        if payload is not None:
            child.add_payload(payload)
        return child

    def scrub(self, text: str) -> str:
        """Scrub ``text`` with every known secret (see :func:`scrub`)."""
        return scrub(text, self._secrets)

    def __len__(self) -> int:
        return len(self._secrets)

    def __repr__(self) -> str:
        return f"Redactor(<{len(self._secrets)} secrets>)"


def object_hmac_key(pepper: str, uid: str) -> bytes:
    """Per-object HMAC key for secret hashes: HMAC(pepper, object uid); stable for the object's life."""
    return hmac.new((pepper or DEFAULT_PEPPER).encode(), uid.encode(), hashlib.sha256).digest()


def secret_hash(hmac_key: bytes, value: str) -> str:
    """Keyed hash of a secret value: `hmac-sha256:<hex>`; safe to store, useless without the key."""
    digest = hmac.new(hmac_key, value.encode("utf-8"), hashlib.sha256).hexdigest()
    return HASH_PREFIX + digest


def decode_secret_data(
    data: Mapping[str, str] | None, string_data: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Decode a Secret's base64 `data` (plus plain `stringData`, which wins) to text values.

    Keys whose value is not valid base64 UTF-8 are left out (they then show up as a missing key, by name).
    """
    out: dict[str, str] = {}
    for key, encoded in (data or {}).items():
        try:
            out[key] = base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
    out.update(string_data or {})
    return out
