"""The front's HTTP client to rclone, and the requests it makes there itself, signed with its key.

What rclone lacks the front builds from rclone's own operations: an
UploadPartCopy is a ranged GET streamed into an UploadPart, a form upload a
PUT streamed from the spooled file.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from urllib.parse import quote
from xml.sax.saxutils import escape

import aiohttp
from yarl import URL

from kpipe.local.s3._durable import Backend
from kpipe.local.s3._errors import S3Refusal, xml_headers
from kpipe.local.s3._post import PostForm
from kpipe.local.s3._request import HOP_BY_HOP
from kpipe.local.s3._sigv4 import Request, sign

Answer = tuple[int, list[tuple[bytes, bytes]], bytes]

_CHUNK = 1024 * 1024


def end_to_end(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """An answer's headers less the hop-by-hop ones."""
    return [(k, v) for k, v in raw if k.decode("latin-1").lower() not in HOP_BY_HOP]


def _object_path(bucket: str, key: str) -> str:
    return "/" + quote(bucket) + "/" + quote(key, safe="/~")


class RcloneClient:
    """One connection pool to rclone, and the front's own signed requests.

    Args:
        backend: rclone.
        credentials: the access key the front signs with.
        region: the region it signs for.
    """

    def __init__(self, backend: Backend, credentials: tuple[str, str], region: str) -> None:
        self._backend = backend
        self._credentials = credentials
        self._region = region
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                # The backend is on loopback: no connection limit, no decompression.
                connector=aiohttp.TCPConnector(limit=0, force_close=False),
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=300),
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def sign(self, method: str, path: str, query: str, headers: dict[str, str]) -> dict[str, str]:
        """``headers`` signed with the front's key for a request to rclone."""
        request = Request(method, path, query, {**headers, "host": self._backend.endpoint})
        signed = sign(request, *self._credentials, self._region, datetime.now(UTC))
        del signed["host"]  # aiohttp sends the same Host
        return signed

    async def copy_part(
        self, path: str, query: str, source: tuple[str, str], first: int, last: int
    ) -> Answer:
        """UploadPartCopy: bytes ``first``..``last`` of ``source`` streamed into the part."""
        source_path = _object_path(*source)
        get_headers = self.sign("GET", source_path, "", {"range": f"bytes={first}-{last}"})
        client = self.session
        async with client.get(
            URL(self._backend.url + source_path, encoded=True), headers=get_headers
        ) as got:
            if got.status not in (200, 206):
                return got.status, end_to_end(got.raw_headers), await got.read()
            put_headers = self.sign("PUT", path, query, {"content-length": str(last - first + 1)})
            async with client.put(
                URL(f"{self._backend.url}{path}?{query}", encoded=True),
                headers=put_headers,
                data=got.content.iter_chunked(_CHUNK),
            ) as put:
                body = await put.read()
                if put.status != 200:
                    return put.status, end_to_end(put.raw_headers), body
                etag = put.headers.get("ETag", "")
        modified = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<CopyPartResult>'
            f"<LastModified>{modified}</LastModified><ETag>{escape(etag)}</ETag></CopyPartResult>"
        ).encode()
        return 200, xml_headers(xml), xml

    async def put_form_file(self, bucket: str, key: str, form: PostForm) -> Answer:
        """PUT a form's file into rclone, streamed from its spool."""
        path = _object_path(bucket, key)
        headers = {**form.object_headers(), "content-length": str(form.size)}
        headers.setdefault("content-type", "binary/octet-stream")
        file = form.file
        if file is None:
            raise S3Refusal(400, "MalformedPOSTRequest", "the form has no file")

        async def chunks() -> AsyncIterator[bytes]:
            while chunk := await asyncio.to_thread(file.read, _CHUNK):
                yield chunk

        async with self.session.put(
            URL(self._backend.url + path, encoded=True),
            headers=self.sign("PUT", path, "", headers),
            data=chunks(),
        ) as put:
            return put.status, end_to_end(put.raw_headers), await put.read()
