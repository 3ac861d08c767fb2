"""One access-log line per request, with link tokens cut out of the path.

Tokens are credentials: `/j/<token>` is logged as `/j/<first 6 chars>…`, and query
strings are dropped. Use it wherever the app is served (`run.py`, tests, benches).
"""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

__all__ = ["RedactingAccessLogger", "redact_path"]

_TOKEN_PATH = re.compile(r"^/j/([^/?]{6})[^/?]*")


def redact_path(path: str) -> str:
    path = path.split("?", 1)[0]
    return _TOKEN_PATH.sub(r"/j/\1…", path)


class RedactingAccessLogger(AbstractAccessLogger):
    def log(
        self, request: web.BaseRequest, response: web.StreamResponse, time: float
    ) -> None:
        self.logger.info(
            "%s %s %s %d %.1f ms",
            request.remote,
            request.method,
            redact_path(request.raw_path),
            response.status,
            time * 1000,
        )
