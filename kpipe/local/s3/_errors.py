"""The S3 errors the front answers itself, with S3's XML error body."""

from __future__ import annotations

from xml.sax.saxutils import escape

from eventing.errors import EventingError


class S3Refusal(EventingError):
    """A request the front refuses: its HTTP status, S3 error code and message."""

    code = "s3_refusal"

    def __init__(self, status: int, s3_code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.s3_code = s3_code
        self.message = message

    def answer(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """``(status, headers, body)``: S3's ``<Error>`` document."""
        return s3_error(self.status, self.s3_code, self.message)


def s3_error(status: int, code: str, message: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
    ).encode()
    return status, xml_headers(body), body


def xml_headers(xml: bytes) -> list[tuple[bytes, bytes]]:
    """The headers of an answer whose body is ``xml``."""
    return [(b"content-type", b"application/xml"), (b"content-length", str(len(xml)).encode())]


def access_denied(message: str = "Access Denied") -> S3Refusal:
    return S3Refusal(403, "AccessDenied", message)


def signature_mismatch() -> S3Refusal:
    return S3Refusal(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided.",
    )
