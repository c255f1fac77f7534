"""Read-ahead over a stream, so that stepping a frame at a time does not pay a full
chunk assembly per frame. The stream tiles identically whatever the read size, so
reading ahead changes no frame."""

from __future__ import annotations

from nrstream.stream.stream import Chunk, Stream

__all__ = ["ReadAhead"]


class ReadAhead:
    """Serves ``take(n)`` from chunks of at least ``read_size`` frames."""

    def __init__(self, stream: Stream, read_size: int = 256) -> None:
        self.stream = stream
        self.read_size = read_size
        self._buffer: Chunk | None = None
        self._position = 0

    def take(self, length: int) -> Chunk:
        left = 0 if self._buffer is None else self._buffer.length - self._position
        if left < length:
            # With the buffer used up, read a multiple of `length`: steps of a fixed size
            # then never leave a remainder to concatenate (a copy of every frame).
            size = length * -(-self.read_size // length) if left == 0 else max(self.read_size, length - left)
            fresh = self.stream.next_chunk(size)
            self._buffer = fresh if left == 0 else Chunk.cat([self._buffer[:, self._position :], fresh])
            self._position = 0
        chunk = self._buffer[:, self._position : self._position + length]
        self._position += length
        return chunk
