"""The wire, sans-IO: what every runtime (threaded, asyncio) shares of TCP_LITE.

frames (the frame layer: header, decoder, every frame's body), handshake (preface and
HELLO), windows (the flow-control windows HELLO announces), envelope (CALL and STATUS
bodies, metadata), codec (msgpack and JSON with their decode limits) and convert (contract values <-> wire form, which generated stubs
call through the stable path `gopherpipe_runtime.convert`). Bytes in, values or
bytes out: no sockets, threads or clocks, so that a second runtime reuses them as they
are, and the fuzzer (fuzz/) reaches all of them. See rfc/RFC-TCP_LITE.md.
"""
