"""The client's address as seen through TRUSTED_PROXY_COUNT proxies (sign-in throttling keys on it)."""

from django.conf import settings


def client_ip(request) -> str:
    """REMOTE_ADDR with no proxy; behind N proxies, the address the outermost one saw.

    Each proxy appends the address it received the request from to X-Forwarded-For, so the N-th
    entry from the right was written by our outermost proxy; anything left of it came from the
    client and may be forged. A header shorter than that (a request that bypassed a proxy) falls
    back to the peer's address.
    """
    peer = request.META.get("REMOTE_ADDR", "")
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return peer
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    return hops[-count] if len(hops) >= count else peer
