"""A fast fake OpenAI-compatible upstream for load benchmarks (not product code).

It answers ``POST /v1/chat/completions`` with a fixed ``chat.completion`` (or, when the
body asks for ``"stream": true``, a fixed SSE stream of 8 content chunks, the finish
chunk, a usage chunk and ``[DONE]``) after a fixed latency. Written on ``asyncio.Protocol``
with pre-built responses so that the upstream itself is never what a benchmark measures:
on one core it serves well over 10,000 requests/s on loopback.

    python -m bench.upstream --port 9000 --latency-ms 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time

STREAM = re.compile(rb'"stream"\s*:\s*true')
HEAD_END = b"\r\n\r\n"


def _completion() -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "The quick brown fox jumps over the lazy dog.",
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 10, "total_tokens": 22},
        "system_fingerprint": "fp_bench",
    }
    payload = json.dumps(body, separators=(",", ":")).encode()
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        b"content-length: " + str(len(payload)).encode() + HEAD_END + payload
    )


def _chunk(delta: dict[str, object], finish: str | None = None) -> dict[str, object]:
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_bench",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def _stream() -> bytes:
    events = [_chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [
        _chunk({"content": word + " "})
        for word in ["The", "quick", "brown", "fox", "jumps", "over", "it"]
    ]
    events.append(_chunk({}, finish="stop"))
    usage = {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}
    events.append({**_chunk({}), "choices": [], "usage": usage})
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    body += b"data: [DONE]\n\n"
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
        b"content-length: " + str(len(body)).encode() + HEAD_END + body
    )


class _Connection(asyncio.Protocol):
    def __init__(self, latency: float, completion: bytes, stream: bytes) -> None:
        self.latency = latency
        self.completion = completion
        self.stream = stream
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(HEAD_END)
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            for line in head.split(b"\r\n")[1:]:
                if line.startswith(b"content-length:"):
                    length = int(line[15:])
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = self.buffer[end + 4 : total]
            self.buffer = self.buffer[total:]
            if not head.startswith(b"post"):
                self._send(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                continue
            answer = self.stream if STREAM.search(body) else self.completion
            if self.latency:
                asyncio.get_running_loop().call_later(self.latency, self._send, answer)
            else:
                self._send(answer)

    def _send(self, answer: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(port: int, latency_ms: float) -> None:
    loop = asyncio.get_running_loop()
    completion, stream = _completion(), _stream()
    server = await loop.create_server(
        lambda: _Connection(latency_ms / 1000, completion, stream), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args.port, args.latency_ms))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
