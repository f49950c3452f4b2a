"""A registry's answer as the client's HTTP opener returns it: the one fake
response the unit tests' scripted registries hand back."""

from __future__ import annotations

import http.client
import io
from typing import Dict, Optional


class Answer:
    def __init__(self, status: int, headers: Optional[Dict[str, str]] = None, body: bytes = b""):
        self.status = status
        self.reason = http.client.responses.get(status, "")
        self.headers = http.client.HTTPMessage()
        for key, value in (headers or {}).items():
            self.headers[key] = value
        self.body = io.BytesIO(body)

    def read(self, n=-1):
        return self.body.read(-1 if n is None else n)

    def close(self):
        pass
