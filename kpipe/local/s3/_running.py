"""The start/stop lifecycle of the local servers and workers, as a context manager."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Running:
    """Something started by :meth:`start` and stopped by :meth:`stop`.

    ``with thing:`` starts it and stops it on the way out, exception or not.
    """

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
