"""Server addresses as we store and show them: credentials in a url never leave the catalog.

A catalog `url` may carry a password (`http://user:pass@host/v1`) or a key in its query
(`?api_key=…`, `token=`, `key=`). `redact_url` replaces them with `***`; the log, the exports, error
messages, the UI and the `models` listing all show a url through it. Requests use the url as written.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "***"
# A query or fragment parameter whose name says it holds a secret (api_key, access_token, sig, …).
_SECRET_NAME = re.compile(r"key|token|secret|pass|pwd|auth|sig|cred|session", re.IGNORECASE)
_PARAM = re.compile(r"(?P<name>[^=&;]*)=(?P<value>[^&;]*)")
_URL_IN_TEXT = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s\"'<>]+", re.IGNORECASE)


def _redact_params(part: str) -> str:
    def one(m: re.Match[str]) -> str:
        if m["value"] and _SECRET_NAME.search(unquote(m["name"])):
            return f"{m['name']}={REDACTED}"
        return m.group()

    return _PARAM.sub(one, part)


def redact_url(url: str) -> str:
    """*url* without its credentials: user and password, and secret query parameters."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not a url we can take apart: show none of it
        return "(an unreadable url)"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rsplit('@', 1)[1]}"
    return urlunsplit(
        (
            parts.scheme,
            netloc,
            parts.path,
            _redact_params(parts.query),
            _redact_params(parts.fragment),
        )
    )


def url_secrets(url: str) -> list[str]:
    """The credentials written in *url* (password, user, secret parameters' values): an error
    message that echoes one of them gets it replaced too."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: list[str] = []
    if "@" in parts.netloc:  # the password, or a user name that is a token by itself
        user, _, password = parts.netloc.rsplit("@", 1)[0].partition(":")
        found.append(password or user)
    for part in (parts.query, parts.fragment):
        for m in _PARAM.finditer(part):
            if m["value"] and _SECRET_NAME.search(unquote(m["name"])):
                found.append(m["value"])
    found += [unquote(s) for s in found]
    return [s for s in dict.fromkeys(found) if len(s) >= 3]


def redact_urls(text: str) -> str:
    """*text* (an error message, a server's answer) with every url in it redacted."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group()), text)
