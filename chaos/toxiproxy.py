"""The one module that talks to Toxiproxy, through toxiproxy-python.

toxiproxy-python (0.1.1, 2019) keeps its server address in class attributes, raises bare
`requests` errors and silently accepts unknown toxic types; those quirks stay contained here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import requests
from toxiproxy import Toxiproxy
from toxiproxy import api as toxiproxy_api
from toxiproxy.api import APIConsumer

from facts import topology

# Every toxic Toxiproxy 2.x knows, with the attributes it accepts (all integers).
TOXIC_ATTRIBUTES: dict[str, frozenset[str]] = {
    "latency": frozenset({"latency", "jitter"}),  # ms
    "bandwidth": frozenset({"rate"}),  # KB/s
    "slow_close": frozenset({"delay"}),  # ms
    "timeout": frozenset({"timeout"}),  # ms; 0 = black hole until removed
    "reset_peer": frozenset({"timeout"}),  # ms before the TCP RST
    "slicer": frozenset({"average_size", "size_variation", "delay"}),  # bytes, bytes, us
    "limit_data": frozenset({"bytes"}),
}
STREAMS = ("upstream", "downstream")


class ToxiproxyError(RuntimeError):
    pass


HTTP_TIMEOUT = 10.0  # seconds; the library passes none, and a hung API would hang a fault's undo


class _RequestsWithTimeout:
    """Stands in for the `requests` module inside toxiproxy-python, adding a timeout to every call."""

    def __getattr__(self, method: str) -> Any:
        call = getattr(requests, method)
        if method not in ("get", "post", "patch", "delete", "put"):
            return call
        return lambda *args, **kwargs: call(*args, **{"timeout": HTTP_TIMEOUT, **kwargs})


toxiproxy_api.requests = _RequestsWithTimeout()


@dataclass(frozen=True)
class Toxic:
    link: str
    type: str
    attributes: dict[str, int] = field(default_factory=dict)
    stream: str = "downstream"
    toxicity: float = 1.0
    name: str = ""

    @property
    def toxic_name(self) -> str:
        return self.name or f"{self.type}_{self.stream}"


class ToxiproxyClient:
    def __init__(self, host: str | None = None, port: int = topology.TOXIPROXY_API_PORT) -> None:
        self.host, self.port = host or topology.host_for(port), port
        self._server = Toxiproxy()
        self.base = f"http://{self.host}:{self.port}"

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        # The library reads its target from class attributes, shared by every client: point them at
        # this client's server before each call (a compose client made meanwhile must not redirect us).
        APIConsumer.host, APIConsumer.port = self.host, self.port
        try:
            return fn(*args, **kwargs)
        except requests.RequestException as e:
            raise ToxiproxyError(f"Toxiproxy {what} failed at {self.base}: {e}") from e
        except Exception as e:  # the library's NotFound/ProxyExists/InvalidToxic carry no context
            raise ToxiproxyError(f"Toxiproxy {what} failed: {type(e).__name__}: {e}") from e

    def version(self) -> str | None:
        try:
            r = requests.get(f"{self.base}/version", timeout=2)
        except requests.RequestException:
            return None
        return r.text.strip() if r.ok else None

    def populate(self, proxies: Iterable[topology.Proxy] = topology.PROXIES) -> None:
        spec = [{"name": p.name, "listen": p.listen, "upstream": p.upstream, "enabled": True} for p in proxies]
        self._call("populate", self._server.populate, spec)

    def proxy_names(self) -> list[str]:
        return sorted(self._call("list proxies", self._server.proxies))

    def _proxy(self, link: str) -> Any:
        proxy = self._call(f"get proxy {link!r}", self._server.get_proxy, link)
        if proxy is None:
            raise ToxiproxyError(f"no Toxiproxy proxy named {link!r} (known: {self.proxy_names()})")
        return proxy

    def _group(self, link: str) -> list[Any]:
        """The proxy `link` and its per-broker siblings `link-<n>` (compose's three-broker profile),
        so a fault on `kafka-produce` cuts every broker's producer path, as it does with one broker."""
        proxies = self._call("list proxies", self._server.proxies)
        group = [p for name, p in sorted(proxies.items()) if re.fullmatch(rf"{re.escape(link)}(-\d+)?", name)]
        if not group:
            raise ToxiproxyError(f"no Toxiproxy proxy named {link!r} (known: {sorted(proxies)})")
        return group

    def set_enabled(self, link: str, enabled: bool) -> None:
        for proxy in self._group(link):
            self._call(f"{'enable' if enabled else 'disable'} {proxy.name}", proxy.enable if enabled else proxy.disable)

    def is_enabled(self, link: str) -> bool:
        return all(p.enabled for p in self._group(link))

    def add_toxic(self, toxic: Toxic) -> str:
        allowed = TOXIC_ATTRIBUTES.get(toxic.type)
        if allowed is None:
            raise ToxiproxyError(f"unknown toxic type {toxic.type!r} (known: {sorted(TOXIC_ATTRIBUTES)})")
        unknown = set(toxic.attributes) - allowed
        if unknown:
            raise ToxiproxyError(f"toxic {toxic.type!r} has no attribute(s) {sorted(unknown)}")
        for proxy in self._group(toxic.link):
            self._call(
                f"add toxic {toxic.toxic_name} to {proxy.name}",
                proxy.add_toxic,
                name=toxic.toxic_name,
                type=toxic.type,
                stream=toxic.stream,
                toxicity=toxic.toxicity,
                attributes=dict(toxic.attributes),
            )
        return toxic.toxic_name

    def remove_toxic(self, link: str, name: str) -> None:
        for proxy in self._group(link):
            self._call(f"remove toxic {name} from {proxy.name}", proxy.destroy_toxic, name)

    def toxics(self, link: str) -> list[str]:
        return sorted(self._call(f"list toxics of {link}", self._proxy(link).toxics))

    def reset(self) -> None:
        """Re-enable every proxy and remove every toxic: the state a run must start and end in.

        Only what differs is touched. Toxiproxy's own /reset also drops every open connection,
        which would make a healthy producer or gRPC channel reconnect at the start of a cell.
        """
        for name, proxy in self._call("list proxies", self._server.proxies).items():
            for toxic in self._call(f"list toxics of {name}", proxy.toxics):
                self._call(f"remove toxic {toxic} from {name}", proxy.destroy_toxic, toxic)
            if not proxy.enabled:
                self._call(f"enable {name}", proxy.enable)
