"""HTTP guards in front of every route: cross-site requests and guessing.

* **Cross-site requests.** A request that changes state (any method but GET, HEAD,
  OPTIONS) and carries cookies (the staff sign-in, the device) but not the admin
  key must say it comes from our own pages: an ``Origin`` that is ours, or, where
  a browser sends no Origin, ``Sec-Fetch-Site: same-origin``. Anything else gets
  403 ``forbidden``. The staff cookie is SameSite=Strict as well; a request with
  no cookie carries no ambient authority and goes on to be judged by its route.
* **Guessing.** Every refused request that presented a credential we did not
  issue (a link that does not open, a wrong API key, a bearer token or staff
  cookie that does not verify) costs the client address one token of its
  `AddressLimits` bucket (`auth_failures_per_minute`, `auth_failure_burst`). An
  address with none left gets 429 ``rate_limited`` with ``Retry-After`` before its
  request is even looked at, so links and keys cannot be brute-forced. A valid
  credential refused for its role (a technician on a trainer's route) costs
  nothing: nothing is being guessed.

Behind a reverse proxy every client has the proxy's address: put the limits in the
proxy too (Tapline does not trust ``X-Forwarded-For``).
"""

from __future__ import annotations

import hmac
import logging
import math
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from server.config import Config
from server.errors import LinkError
from server.limits import AddressLimits
from server.links import LinkSigner

__all__ = ["from_our_pages", "guard_middleware"]

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_REFUSALS = frozenset({401, 403, 409, 410})
"""Statuses that mean a credential was refused."""
_GUARDED_PREFIXES = ("/j/", "/api/", "/console", "/studio", "/supervisor")


def from_our_pages(request: web.Request, config: Config) -> bool:
    """True when the browser says the request comes from a page of ours."""
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin in (f"{request.scheme}://{request.host}", config.origin)
    return request.headers.get("Sec-Fetch-Site") == "same-origin"


def _refused(request: web.Request, status: int, code: str, reason: str) -> web.Response:
    wants_json = request.path.startswith("/api/") or "application/json" in (
        request.headers.get("Accept", "")
    )
    if wants_json:
        return web.json_response({"code": code, "reason": reason}, status=status)
    return web.Response(text=reason, status=status)


def _guessed(
    request: web.Request, signer: LinkSigner, admin_key: str, staff_cookie: str
) -> bool:
    """True when the request presented a link, key or token we did not issue."""
    if request.path.startswith("/j/"):
        return True
    header = request.headers.get("Authorization", "")
    presented = [header[7:].strip()] if header.startswith("Bearer ") else []
    presented += (
        [request.cookies[staff_cookie]] if staff_cookie in request.cookies else []
    )
    for credential in presented:
        if hmac.compare_digest(credential, admin_key):
            continue
        try:
            signer.verify(credential)
        except LinkError:
            return True
    return False


def guard_middleware(
    config: Config, signer: LinkSigner, admin_key: str, staff_cookie: str
) -> Middleware:
    failures = AddressLimits(
        config.auth_failures_per_minute / 60.0, config.auth_failure_burst
    )

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        address = request.remote or ""
        guarded = request.path.startswith(_GUARDED_PREFIXES)
        if guarded and failures.blocked(address):
            wait = math.ceil(failures.bucket(address).wait_s())
            limited = _refused(
                request,
                429,
                "rate_limited",
                f"Too many refused attempts from your address; try again in {wait} s.",
            )
            limited.headers["Retry-After"] = str(wait)
            return limited

        bearer = request.headers.get("Authorization", "").startswith("Bearer ")
        if (
            request.method not in _SAFE_METHODS
            and request.cookies
            and not bearer
            and not from_our_pages(request, config)
        ):
            logger.info(
                "%s %s: cross-site request refused", request.method, request.path
            )
            return _refused(request, 403, "forbidden", "Cross-site request refused.")

        response = await handler(request)
        if (
            guarded
            and response.status in _REFUSALS
            and _guessed(request, signer, admin_key, staff_cookie)
        ):
            failures.take(address)
        return response

    return guard
