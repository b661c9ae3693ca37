"""Side-by-side benchmarks: GopherPipe vs grpcio vs a raw-socket floor.

Run ``python -m bench`` (or ``make bench``). Every server and every measuring client runs in
its own process, one framework at a time, so frameworks never share a process, a GIL or a
core budget with each other.
"""
