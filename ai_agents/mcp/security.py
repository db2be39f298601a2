"""What an MCP server on an agent may point at: the SSRF gate and the stdio allowlist.

Tenants configure MCP servers; the platform then connects to them from inside its
network. So a remote URL must

- use ``http`` or ``https`` and carry no userinfo (``user:pass@``),
- name a host matching ``Settings.mcp_allowed_hosts`` (``*`` any, ``*.example.com``
  that domain and its subdomains, anything else that exact host; empty: none),
- resolve only to public addresses: private, loopback, link-local (cloud metadata at
  169.254.169.254), multicast, reserved, unspecified and shared (CGNAT) addresses are
  refused, also when hidden in IPv4-mapped / 6to4 / Teredo / NAT64 IPv6 forms, unless
  ``Settings.mcp_allow_private_addresses``.

A refused URL always gets the same message ("host is not allowed"), whether the host
is unlisted, private or does not resolve: the answer tells a caller nothing about the
platform's network. The check runs when a server is saved and again at connect time
(DNS may have changed in between).

A stdio server is never a command line: a tenant names an entry of
``Settings.mcp_stdio_commands`` and the operator's argv is used.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from ai_agents.config import Settings
from ai_agents.errors import ConfigurationError, ValidationError

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_SCHEMES = ("http", "https")
#: Seconds a name may take to resolve before the URL is refused.
DNS_TIMEOUT = 5.0
#: Longest URL accepted.
MAX_URL_LENGTH = 2048
#: 100.64.0.0/10 (shared address space, carrier-grade NAT): not public, and not
#: ``is_private`` on every Python version.
_SHARED = ipaddress.ip_network("100.64.0.0/10")
#: NAT64 well-known prefix: the last 32 bits are an IPv4 address.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: Hosts made of digits, dots and hex markers only: numeric address forms
#: (``2130706433``, ``0177.0.0.1``, ``0x7f.1``) that resolvers read as IPv4.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]*))*$", re.IGNORECASE)
_HOST_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")


def _refuse(url: str, why: str) -> ValidationError:
    """The one message every refused host gets; ``why`` goes to the server log only."""
    logger.info("MCP url refused (%s): %s", why, _redact(url))
    return ValidationError(
        "url: host is not allowed for MCP servers "
        "(it must be listed in AI_AGENTS_MCP_ALLOWED_HOSTS and resolve to public addresses)",
        details={"field": "url"},
    )


def _invalid(message: str) -> ValidationError:
    return ValidationError(f"url: {message}", details={"field": "url"})


def _redact(url: str) -> str:
    """Drop userinfo, query and fragment before a URL is logged."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable url>"
    return f"{parts.scheme}://{host}{port}{parts.path}"[:200]


def _parse(url: str) -> tuple[str, int | None]:
    """``url`` -> (normalized host, port); ValidationError if it is not a plain http(s) URL."""
    if not isinstance(url, str) or not url:
        raise _invalid("a URL is required")
    if len(url) > MAX_URL_LENGTH:
        raise _invalid(f"longer than {MAX_URL_LENGTH} characters")
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url) or "\\" in url:
        raise _invalid("must not contain whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise _invalid("not a valid URL") from exc
    if parts.scheme.lower() not in _SCHEMES:
        raise _invalid("scheme must be http or https")
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        raise _invalid(
            "must not contain credentials (user:password@); use headers or a bearer token"
        )
    host = parts.hostname
    if not host:
        raise _invalid("a host is required")
    return _normalize_host(host), port


def _normalize_host(host: str) -> str:
    host = host.lower()
    if host.endswith(".") and not host.startswith("["):
        host = host[:-1]
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise _invalid("host is not a valid domain name") from exc
    return host


def _literal_ip(host: str) -> IPAddress | None:
    """The address if ``host`` is a literal IP (IPv6 without brackets, zone id allowed)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Whether ``host`` (normalized) matches an entry of ``mcp_allowed_hosts``."""
    for raw in allowed:
        entry = raw.strip().lower().rstrip(".")
        if not entry:
            continue
        if entry == "*":
            return True
        if entry.startswith("*."):
            domain = entry[2:]
            if domain and (host == domain or host.endswith("." + domain)):
                return True
            continue
        if entry.startswith("[") and entry.endswith("]"):
            entry = entry[1:-1]
        if host == entry:
            return True
        entry_ip, host_ip = _literal_ip(entry), _literal_ip(host)
        if entry_ip is not None and host_ip is not None and entry_ip == host_ip:
            return True
    return False


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    # IPv4-compatible (deprecated) ::a.b.c.d
    if int(ip) >> 32 == 0 and int(ip) > 1:
        found.append(ipaddress.IPv4Address(int(ip)))
    return found


def is_public_address(ip: IPAddress) -> bool:
    """False for private, loopback, link-local, multicast, reserved, unspecified, shared."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return False
        embedded = _embedded_ipv4(ip)
        if embedded:
            return all(is_public_address(v4) for v4 in embedded)
    if (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local)
        or (isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED)
    ):
        return False
    return ip.is_global


def _precheck(url: str, settings: Settings) -> tuple[str, int | None, IPAddress | None]:
    """Everything but DNS: -> (host, port, literal address or None)."""
    host, port = _parse(url)
    if not host_allowed(host, settings.mcp_allowed_hosts):
        raise _refuse(url, "host not in mcp_allowed_hosts")
    ip = _literal_ip(host)
    if ip is None:
        if _NUMERIC_HOST.match(host):
            # Not a canonical address but a resolver would read it as one
            # (decimal, octal, hex, short forms): refuse outright.
            raise _refuse(url, "non-canonical numeric host")
        labels = host.split(".")
        if len(host) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
            raise _invalid("host is not a valid domain name")
    elif not settings.mcp_allow_private_addresses and not is_public_address(ip):
        raise _refuse(url, "literal non-public address")
    return host, port, ip


def _check_resolved(url: str, infos: Iterable[tuple[object, ...]]) -> None:
    addresses: list[IPAddress] = []
    for info in infos:
        sockaddr = info[4]
        if not isinstance(sockaddr, tuple) or not sockaddr:
            continue
        text = str(sockaddr[0]).split("%", 1)[0]
        ip = _literal_ip(text)
        if ip is None:
            raise _refuse(url, f"unparsable resolved address {text!r}")
        addresses.append(ip)
    if not addresses:
        raise _refuse(url, "no addresses")
    for ip in addresses:
        if not is_public_address(ip):
            raise _refuse(url, f"resolves to non-public {ip}")


def check_remote_url(url: str, settings: Settings) -> None:
    """Raise ``ValidationError`` unless ``url`` is an allowed, public http(s) MCP URL.

    Resolves the host with the blocking resolver: in async code use
    :func:`check_remote_url_async`.
    """
    host, port, ip = _precheck(url, settings)
    if ip is not None or settings.mcp_allow_private_addresses:
        return
    try:
        infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise _refuse(url, f"does not resolve: {exc}") from exc
    _check_resolved(url, infos)


async def check_remote_url_async(url: str, settings: Settings) -> None:
    """:func:`check_remote_url` resolving in the loop's executor (never blocks the loop)."""
    host, port, ip = _precheck(url, settings)
    if ip is not None or settings.mcp_allow_private_addresses:
        return
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM), DNS_TIMEOUT
        )
    except (OSError, UnicodeError, TimeoutError) as exc:
        raise _refuse(url, f"does not resolve: {exc!r}") from exc
    _check_resolved(url, infos)


def stdio_argv(name: str, settings: Settings) -> list[str]:
    """The operator's argv for the allowlisted stdio server ``name``."""
    commands = settings.mcp_stdio_commands or {}
    if not isinstance(name, str) or name not in commands:
        raise ValidationError(
            "command: not an allowed stdio MCP server name "
            "(the operator lists them in AI_AGENTS_MCP_STDIO_COMMANDS)",
            details={"field": "command"},
        )
    argv = commands[name]
    if (
        not isinstance(argv, list | tuple)
        or not argv
        or not all(isinstance(part, str) and part for part in argv)
    ):
        raise ConfigurationError(
            f"AI_AGENTS_MCP_STDIO_COMMANDS[{name!r}] must be a non-empty list of strings"
        )
    return list(argv)
