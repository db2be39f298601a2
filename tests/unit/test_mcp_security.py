"""The SSRF gate and the stdio allowlist of MCP servers (ai_agents/mcp/security.py)."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from ai_agents.config import Settings
from ai_agents.errors import ConfigurationError, ValidationError
from ai_agents.mcp.security import (
    check_remote_url,
    check_remote_url_async,
    host_allowed,
    is_public_address,
    stdio_argv,
)

ANY = Settings(mcp_allowed_hosts=("*",))
NOT_ALLOWED = "host is not allowed for MCP servers"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.1.2.3:8080/mcp",
        "http://10.0.0.1/",
        "http://172.16.5.4/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://100.64.0.1/",  # shared address space (CGNAT)
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://255.255.255.255/",
        "http://[::1]/",
        "http://[::]/",
        "http://[fe80::1]/",
        "http://[fe80::1%25eth0]/",
        "http://[fc00::1]/",
        "http://[ff02::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",  # mapped 169.254.169.254
        "http://[::127.0.0.1]/",  # IPv4-compatible
        "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
        "http://[2002:a00:1::]/",  # 6to4 of 10.0.0.1
        "http://2130706433/",  # decimal 127.0.0.1
        "http://0177.0.0.1/",  # octal
        "http://0x7f.0.0.1/",  # hex
        "http://0x7f000001/",
        "http://127.1/",  # short form
        "http://localhost/",  # resolves to loopback
    ],
)
def test_private_and_odd_addresses_refused(url: str) -> None:
    with pytest.raises(ValidationError, match=NOT_ALLOWED) as info:
        check_remote_url(url, ANY)
    assert info.value.details == {"field": "url"}


@pytest.mark.parametrize(
    "url",
    ["http://93.184.215.14/mcp", "https://93.184.215.14:8443/sse", "https://[2606:4700::1111]/"],
)
def test_public_literals_accepted(url: str) -> None:
    check_remote_url(url, ANY)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "scheme must be http or https"),
        ("ftp://93.184.215.14/", "scheme must be http or https"),
        ("javascript:alert(1)", "scheme must be http or https"),
        ("http://user:pw@93.184.215.14/", "must not contain credentials"),
        ("http://user@93.184.215.14/", "must not contain credentials"),
        ("http://@93.184.215.14/", "must not contain credentials"),
        ("http:///x", "a host is required"),
        ("http://93.184.215.14:99999/", "not a valid URL"),
        ("http://93.184.215.14/\r\nHost: x", "control characters"),
        ("http://93.184.215.14\\@127.0.0.1/", "backslashes"),
        ("", "a URL is required"),
        ("http://" + "a" * 3000 + ".com/", "longer than"),
        ("http://bad_host!.com/", "not a valid domain name"),
    ],
)
def test_malformed_urls_refused(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        check_remote_url(url, ANY)


def test_allowlist() -> None:
    allowed = ("api.example.com", "*.tools.test", "93.184.215.14", "[2606:4700::1111]")
    assert host_allowed("api.example.com", allowed)
    assert not host_allowed("evil.example.com", allowed)
    assert not host_allowed("api.example.com.evil.test", allowed)
    assert host_allowed("tools.test", allowed)
    assert host_allowed("a.b.tools.test", allowed)
    assert not host_allowed("eviltools.test", allowed)
    assert host_allowed("93.184.215.14", allowed)
    assert host_allowed("2606:4700:0::1111", allowed)
    assert not host_allowed("93.184.215.15", allowed)
    assert not host_allowed("anything", ())
    assert host_allowed("anything", ("*",))


def test_unlisted_host_same_message_as_private() -> None:
    settings = Settings(mcp_allowed_hosts=("93.184.215.14", "localhost"))
    messages = set()
    for url in ("http://93.184.215.15/", "http://localhost/", "http://10.0.0.1/"):
        with pytest.raises(ValidationError) as info:
            check_remote_url(url, settings)
        messages.add(info.value.message)
    assert len(messages) == 1
    with pytest.raises(ValidationError, match=NOT_ALLOWED):
        check_remote_url("http://93.184.215.14/", Settings())  # nothing allowed


def test_trailing_dot_and_case_normalized() -> None:
    settings = Settings(mcp_allowed_hosts=("localhost",))
    # Allowed by name, refused by address: the name was matched despite case and dot.
    for url in ("http://LOCALHOST./", "http://LocalHost/"):
        with pytest.raises(ValidationError, match=NOT_ALLOWED):
            check_remote_url(url, settings)
    check_remote_url(
        "http://LOCALHOST./",
        Settings(mcp_allowed_hosts=("localhost",), mcp_allow_private_addresses=True),
    )


def _fake_dns(monkeypatch: pytest.MonkeyPatch, addresses: list[str]) -> None:
    def fake(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        out = []
        for a in addresses:
            family = socket.AF_INET6 if ":" in a else socket.AF_INET
            sockaddr = (a, port, 0, 0) if family == socket.AF_INET6 else (a, port)
            out.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
        return out

    monkeypatch.setattr(socket, "getaddrinfo", fake)


def test_name_resolving_to_any_private_address_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(mcp_allowed_hosts=("*.example.com",))
    _fake_dns(monkeypatch, ["93.184.215.14"])
    check_remote_url("https://mcp.example.com/", settings)
    _fake_dns(monkeypatch, ["93.184.215.14", "10.1.2.3"])
    with pytest.raises(ValidationError, match=NOT_ALLOWED):
        check_remote_url("https://mcp.example.com/", settings)
    _fake_dns(monkeypatch, ["::ffff:169.254.169.254"])
    with pytest.raises(ValidationError, match=NOT_ALLOWED):
        check_remote_url("https://mcp.example.com/", settings)
    _fake_dns(monkeypatch, [])
    with pytest.raises(ValidationError, match=NOT_ALLOWED):
        check_remote_url("https://mcp.example.com/", settings)


def test_unresolvable_name_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(ValidationError, match=NOT_ALLOWED):
        check_remote_url("https://nope.example.com/", ANY)


def test_private_allowed_when_configured() -> None:
    settings = Settings(mcp_allowed_hosts=("*",), mcp_allow_private_addresses=True)
    for url in ("http://127.0.0.1:9000/", "http://[::1]/", "http://localhost/"):
        check_remote_url(url, settings)
    # Still no userinfo, other schemes or unlisted hosts.
    with pytest.raises(ValidationError):
        check_remote_url("http://u:p@127.0.0.1/", settings)
    with pytest.raises(ValidationError):
        check_remote_url(
            "http://10.0.0.1/", Settings(mcp_allowed_hosts=("x",), mcp_allow_private_addresses=True)
        )


async def test_async_variant() -> None:
    await check_remote_url_async("http://93.184.215.14/", ANY)
    for url in ("http://localhost/", "http://127.0.0.1/", "file:///x"):
        with pytest.raises(ValidationError):
            await check_remote_url_async(url, ANY)


async def test_async_variant_resolves_in_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    seen: list[str] = []

    async def fake(self: Any, host: str, port: Any, **kwargs: Any) -> list[Any]:
        seen.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("192.168.0.7", port))]

    monkeypatch.setattr(type(asyncio.get_running_loop()), "getaddrinfo", fake)
    with pytest.raises(ValidationError, match=NOT_ALLOWED):
        await check_remote_url_async("https://mcp.example.com/", ANY)
    assert seen == ["mcp.example.com"]


def test_is_public_address() -> None:
    assert is_public_address(ipaddress.ip_address("8.8.8.8"))
    assert is_public_address(ipaddress.ip_address("2001:4860:4860::8888"))
    assert not is_public_address(ipaddress.ip_address("192.0.2.1"))  # documentation
    assert not is_public_address(ipaddress.ip_address("::ffff:10.0.0.1"))


def test_stdio_argv() -> None:
    settings = Settings(mcp_stdio_commands={"time": ["python", "-m", "mcp_server_time"]})
    assert stdio_argv("time", settings) == ["python", "-m", "mcp_server_time"]
    argv = stdio_argv("time", settings)
    argv.append("--evil")
    assert stdio_argv("time", settings) == ["python", "-m", "mcp_server_time"]
    for name in ("bash", "python -m mcp_server_time", "", "TIME"):
        with pytest.raises(ValidationError, match="not an allowed stdio") as info:
            stdio_argv(name, settings)
        assert info.value.details == {"field": "command"}
    with pytest.raises(ValidationError):
        stdio_argv("time", Settings())
    with pytest.raises(ConfigurationError):
        stdio_argv("bad", Settings(mcp_stdio_commands={"bad": []}))
