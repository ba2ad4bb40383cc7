"""Uploading to the site's collector over HTTP (only sites with ``upload_url``)."""

from __future__ import annotations

import http.client
import json
import logging
import urllib.parse

log = logging.getLogger(__name__)


def post_json(url: str, payload: dict, timeout: float = 10.0) -> int:
    """POST ``payload`` as JSON to ``url``; return the HTTP status."""
    parts = urllib.parse.urlsplit(url)
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.netloc, timeout=timeout)
    try:
        body = json.dumps(payload, sort_keys=True).encode()
        conn.request("POST", parts.path or "/", body,
                     {"Content-Type": "application/json"})
        return conn.getresponse().status
    finally:
        conn.close()


def upload_summary(url: str, summary: dict) -> bool:
    """Send the run summary to the collector; False (and a log line) if it fails."""
    try:
        status = post_json(url, summary)
    except OSError as e:
        log.error("upload failed: %s", e)
        return False
    if status >= 300:
        log.error("upload refused: HTTP %d", status)
        return False
    return True


def ping(url: str) -> bool:
    """Whether the collector answers a HEAD request."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=3)
    try:
        conn.request("HEAD", "/")
        return conn.getresponse().status < 500
    except OSError:
        return False
    finally:
        conn.close()
