"""Images in chat requests: data URIs checked, http(s) URLs fetched once and safely, bytes and pixels bounded.

Every image is checked from its header alone (format, width x height) before any pixel is decoded, so a
decompression bomb is refused without being expanded. URL fetching refuses hosts that resolve to private,
loopback, link-local or otherwise non-public addresses (unless the policy allows them), connects to the
address it checked (no second DNS lookup to rebind), re-checks every redirect, and stops reading at the
byte limit.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import ipaddress
import re
import socket
from dataclasses import dataclass

import httpx
from PIL import Image, UnidentifiedImageError

from ecvl_router.serve.config import ImagePolicy, Limits
from ecvl_router.serve.errors import GatewayError, bad_request

_DATA_URI = re.compile(r"data:(?P<mime>[^,;]*)(?P<params>(?:;[^,;]*)*),", re.IGNORECASE)
_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class CheckedImage:
    """Encoded image bytes whose header was read and found within the limits."""

    data: bytes
    format: str
    size: tuple[int, int]

    @property
    def mime(self) -> str:
        return Image.MIME.get(self.format, "application/octet-stream")

    def data_uri(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"

    def decode(self, where: str) -> Image.Image:
        """All pixels decoded; a truncated or corrupt file is a 400 naming ``where``."""
        try:
            image = Image.open(io.BytesIO(self.data))
            image.load()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise bad_request(f"{where}: the image cannot be decoded ({exc})", param=where, code="invalid_image") from None
        return image


def check_image(data: bytes, where: str, limits: Limits) -> CheckedImage:
    """``data`` as a CheckedImage; not an image, too many bytes or too many pixels is a 400."""
    if len(data) > limits.max_image_bytes:
        raise _too_large(where, f"{len(data)} bytes exceed the limit of {limits.max_image_bytes}")
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt, size = image.format, image.size
    except Image.DecompressionBombError:
        raise _too_large(where, f"the image has more pixels than the limit of {limits.max_image_pixels}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise bad_request(f"{where}: the data is not an image in a format the gateway reads", param=where, code="invalid_image") from None
    if size[0] * size[1] > limits.max_image_pixels:
        raise _too_large(where, f"{size[0]}x{size[1]} pixels exceed the limit of {limits.max_image_pixels}")
    return CheckedImage(data, fmt or "", size)


def decode_data_uri(url: str, where: str, limits: Limits) -> CheckedImage:
    """The image in a ``data:image/...;base64,...`` URI."""
    match = _DATA_URI.match(url)
    if match is None or ";base64" not in match["params"].lower():
        raise bad_request(f"{where}: a data URI must look like data:image/png;base64,<data>", param=where, code="invalid_image")
    if not match["mime"].lower().startswith("image/"):
        raise bad_request(f"{where}: data URI of type {match['mime'] or 'unknown'!r}; an image type is required", param=where, code="invalid_image")
    payload = url[match.end() :]
    if len(payload) * 3 // 4 > limits.max_image_bytes + 3:
        raise _too_large(where, f"about {len(payload) * 3 // 4} bytes exceed the limit of {limits.max_image_bytes}")
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(f"{where}: the data URI is not valid base64", param=where, code="invalid_image") from None
    return check_image(data, where, limits)


def is_public_address(address: str) -> bool:
    """Whether an IP address is globally routable (not private, loopback, link-local, reserved, multicast...)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class ImageFetcher:
    """Downloads image URLs under an ImagePolicy; use ``async with`` or call :meth:`aclose`."""

    def __init__(self, policy: ImagePolicy, limits: Limits) -> None:
        self.policy = policy
        self.limits = limits
        self._client = httpx.AsyncClient(
            timeout=policy.fetch_timeout_s,
            follow_redirects=False,
            headers={"Accept": "image/*", "Accept-Encoding": "identity", "User-Agent": "ecvl-router-gateway"},
            trust_env=False,
        )

    async def __aenter__(self) -> ImageFetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch(self, url: str, where: str) -> CheckedImage:
        """The image at an http(s) URL; every refusal or failure is a 400 naming ``where``."""
        if not self.policy.fetch_urls:
            raise bad_request(f"{where}: image URLs are not fetched by this gateway; send a data URI", param=where, code="image_url_disabled")
        try:
            async with asyncio.timeout(self.policy.fetch_timeout_s):
                data = await self._download(url, where)
        except TimeoutError:
            raise bad_request(f"{where}: the image URL did not deliver within {self.policy.fetch_timeout_s:g} s", param=where, code="image_fetch_failed") from None
        except httpx.HTTPError as exc:
            raise bad_request(f"{where}: the image URL cannot be fetched ({type(exc).__name__})", param=where, code="image_fetch_failed") from None
        return check_image(data, where, self.limits)

    async def _download(self, url: str, where: str) -> bytes:
        for _ in range(self.policy.max_redirects + 1):
            target = _parse_url(url, where)
            address = await self._allowed_address(target, where)
            request = self._client.build_request(
                "GET",
                target.copy_with(host=address),
                headers={"Host": target.netloc.decode("ascii")},
                extensions={"sni_hostname": target.host} if target.scheme == "https" else {},
            )
            response = await self._client.send(request, stream=True)
            try:
                if response.status_code in _REDIRECTS and "location" in response.headers:
                    url = str(target.join(response.headers["location"]))
                    continue
                if response.status_code != 200:
                    raise bad_request(f"{where}: the image URL answered HTTP {response.status_code}", param=where, code="image_fetch_failed")
                return await self._read_limited(response, where)
            finally:
                await response.aclose()
        raise bad_request(f"{where}: more than {self.policy.max_redirects} redirects", param=where, code="image_fetch_failed")

    async def _allowed_address(self, url: httpx.URL, where: str) -> str:
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(url.host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise bad_request(f"{where}: the host {url.host!r} cannot be resolved", param=where, code="image_fetch_failed") from None
        addresses = [str(info[4][0]) for info in infos]
        if not self.policy.allow_private_networks:
            refused = [address for address in addresses if not is_public_address(address)]
            if refused or not addresses:
                raise bad_request(
                    f"{where}: refused to fetch from {url.host!r}: it resolves to a private, loopback or link-local "
                    f"address ({refused[0] if refused else 'none'})",
                    param=where,
                    code="image_url_refused",
                )
        return addresses[0]

    async def _read_limited(self, response: httpx.Response, where: str) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limits.max_image_bytes:
            raise _too_large(where, f"{declared} bytes exceed the limit of {self.limits.max_image_bytes}")
        buffer = bytearray()
        async for chunk in response.aiter_raw():
            buffer += chunk
            if len(buffer) > self.limits.max_image_bytes:
                raise _too_large(where, f"the download exceeds the limit of {self.limits.max_image_bytes} bytes")
        return bytes(buffer)


def _parse_url(url: str, where: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise bad_request(f"{where}: not a valid URL", param=where, code="invalid_image_url") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise bad_request(f"{where}: only data:, http:// and https:// image URLs are accepted", param=where, code="invalid_image_url")
    return parsed


def _too_large(where: str, detail: str) -> GatewayError:
    return bad_request(f"{where}: image too large: {detail}", param=where, code="image_too_large")
