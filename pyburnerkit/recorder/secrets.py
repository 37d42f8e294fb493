"""Hiding credentials in everything the recorder shows: logs, reprs, events and errors.

Three tools, used together on every path that turns configuration into text:

* :func:`redact_dsn` for a PostgreSQL connection string: a URL
  (``postgresql://user:pass@host/db?password=...``) or libpq key/value pairs
  (``host=db password='a b'``), parsed the way libpq parses them, so a quoted password with
  spaces, a URL password with an unencoded ``@`` and every other form lose all of the secret;
* :func:`redact_text` for free text (an error message, an alert command argument): URLs with a
  password, ``key=value`` / ``key: value`` pairs whose key names a credential, ``-u user:pass``,
  ``Bearer <token>``;
* :func:`redact_mapping` for options (``{"password": ...}``) and :func:`scrub` to remove known
  secret strings (say, values that came from ``.env``) wherever they ended up.

The replacement is always ``***``; everything that is not secret stays readable.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Mapping, Tuple

__all__ = ["MASK", "is_secret_key", "redact_dsn", "redact_text", "redact_mapping", "scrub",
           "dsn_secrets"]

MASK = "***"

#: names (of options, URL parameters, environment variables) that hold a credential
_SECRET_WORDS = ("password", "passwd", "passphrase", "secret", "token", "credential",
                 "apikey", "api_key", "api-key", "access_key", "private_key", "auth")
_SECRET_NAMES = {"pwd", "pass", "pw"}
#: names that contain a secret word but hold no secret (paths, switches)
_NOT_SECRET = {"keyfile", "certfile", "ca_certs", "auth_method", "authentication",
               "author", "password_file"}


def is_secret_key(name: Any) -> bool:
    """Whether an option/parameter/variable called ``name`` holds a credential."""
    lower = str(name).strip().lower().lstrip("-")
    if lower in _NOT_SECRET:
        return False
    if lower in _SECRET_NAMES or lower.endswith(("_pwd", "_pass", "-pass")):
        return True
    return any(word in lower for word in _SECRET_WORDS)


# ----------------------------------------------------------------------------- PostgreSQL
_URL_START = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.\-]*://")
_KV_KEY = re.compile(r"(?<!\S)([A-Za-z_][A-Za-z0-9_]*)(\s*=\s*)")
#: where a bare (unquoted) value of a secret key ends: before the next "key=" token. libpq
#: ends it at the first space, but a password typed with a space and no quotes would then
#: show its second half in libpq's own error; hide up to the next key instead.
_NEXT_KEY = re.compile(r"\s+[A-Za-z_][A-Za-z0-9_]*\s*=")
_QUERY_PARAM = re.compile(r"(?<=[?&])([^=&#\s]+)=([^&#]*)")


def _quoted_end(text: str, start: int) -> int:
    """The index after the closing quote of a libpq single-quoted value opening at ``start``
    (backslash escapes any character); the end of ``text`` when it never closes."""
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "'":
            return i + 1
        i += 1
    return len(text)


def _bare_end(text: str, start: int) -> int:
    following = _NEXT_KEY.search(text, start)
    return following.start() if following else len(text)


def _redact_key_values(text: str) -> str:
    """libpq ``key=value`` pairs: every value of a secret key becomes ``***``."""
    out: List[str] = []
    pos = 0
    while True:
        match = _KV_KEY.search(text, pos)
        if match is None:
            break
        value_at = match.end()
        if value_at < len(text) and text[value_at] == "'":
            end = _quoted_end(text, value_at)
        else:
            end = _bare_end(text, value_at)
        if is_secret_key(match.group(1)):
            out.append(text[pos:value_at])
            out.append(MASK)
        else:
            out.append(text[pos:end])
        pos = max(end, match.end())
    out.append(text[pos:])
    return "".join(out)


def _redact_url(url: str) -> str:
    """``scheme://user:password@host...``: the password becomes ``***``, even one holding
    ``@``, ``:`` or ``/`` (the user info ends at the last ``@``); secret query parameters too."""
    head = _URL_START.match(url)
    assert head is not None
    start = head.end()
    at = url.rfind("@", start)
    if at >= 0:
        userinfo = url[start:at]
        user, colon, _ = userinfo.partition(":")
        if colon:
            url = f"{url[:start]}{user}:{MASK}{url[at:]}"
    return _QUERY_PARAM.sub(
        lambda m: f"{m.group(1)}={MASK}" if is_secret_key(m.group(1)) else m.group(0), url)


def redact_dsn(dsn: str) -> str:
    """The connection string (URL or key/value) with every password replaced by ``***``."""
    text = str(dsn)
    if _URL_START.match(text):
        return _redact_url(text)
    return _redact_key_values(text)


def dsn_secrets(dsn: str) -> List[str]:
    """The secret values of a connection string as libpq reads them (to :func:`scrub`
    messages that might quote them); empty when it cannot be parsed."""
    try:
        from psycopg.conninfo import conninfo_to_dict
        parsed = conninfo_to_dict(dsn)
    except Exception:  # no psycopg, or not a valid DSN: nothing more to find
        return []
    return [str(v) for k, v in parsed.items() if is_secret_key(k) and v]


# ----------------------------------------------------------------------------- free text
_URL_IN_TEXT = re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)([^\n]*)@")
_TEXT_PAIR = re.compile(
    r"(?<![^\s?&;,\-\"'{(])([A-Za-z_][A-Za-z0-9_.\-]*)(\"?'?\s*[=:]\s*)")
_USER_PASS_FLAG = re.compile(r"((?<!\S)(?:-u|--user)\s+[^\s:]+:)(\S+)")
_TEXT_VALUE_END = re.compile(r"[\s&,;)}\]]")
_SCHEME_TOKEN = re.compile(r"\b(Bearer|Basic|Token)(\s+)([A-Za-z0-9\-._~+/=]+)", re.I)


def redact_text(text: str) -> str:
    """Free text with credentials replaced by ``***`` (URL passwords, secret ``key=value``
    and ``key: value`` pairs, ``-u user:password``, ``Bearer``/``Basic`` tokens)."""
    text = str(text)
    text = _URL_IN_TEXT.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    text = _USER_PASS_FLAG.sub(lambda m: f"{m.group(1)}{MASK}", text)
    text = _SCHEME_TOKEN.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    out: List[str] = []
    pos = 0
    for match in _TEXT_PAIR.finditer(text):
        if match.start() < pos or not is_secret_key(match.group(1)):
            continue
        value_at = match.end()
        if value_at < len(text) and text[value_at] in "'\"":
            quote = text[value_at]
            close = text.find(quote, value_at + 1)
            end = len(text) if close < 0 else close + 1
        else:
            stop = _TEXT_VALUE_END.search(text, value_at)
            end = stop.start() if stop else len(text)
        if text[value_at:end] in (MASK, ""):
            continue
        out.append(text[pos:value_at])
        out.append(MASK)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of a known secret value replaced by ``***`` (values of
    one or two characters are left alone: replacing them would garble the text and hides
    nothing worth hiding)."""
    for secret in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def redact_value(key: Any, value: Any, secrets: Iterable[str] = ()) -> Any:
    """One option's value as it may be shown."""
    if is_secret_key(key) and value not in (None, ""):
        return MASK
    if isinstance(value, str):
        shown = redact_dsn(value) if str(key).lower() in ("dsn", "url", "database_url") \
            else redact_text(value)
        return scrub(shown, secrets)
    if isinstance(value, Mapping):
        return redact_mapping(value, secrets)
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value("", v, secrets) for v in value)
    return value


def redact_mapping(options: Mapping[str, Any], secrets: Iterable[str] = ()) -> Dict[str, Any]:
    """A copy of ``options`` fit to show: secret keys masked, DSNs/URLs/free text redacted."""
    secrets = tuple(secrets)
    return {k: redact_value(k, v, secrets) for k, v in options.items()}


def split_secret_env(env: Mapping[str, str]) -> Tuple[str, ...]:
    """The values of environment/``.env`` variables whose names say they are secrets."""
    return tuple(v for k, v in env.items() if v and is_secret_key(k))


class RedactedDict(Dict[str, Any]):
    """A plain dict of options whose ``repr()`` (and ``str()``) hides credentials: secret keys,
    DSN/URL passwords and the known ``secrets`` (values that came from secret variables).
    The values themselves are untouched."""

    def __init__(self, *args: Any, secrets: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.secrets = tuple(secrets)

    def __repr__(self) -> str:
        return scrub(repr(redact_mapping(self, self.secrets)), self.secrets)

    __str__ = __repr__
