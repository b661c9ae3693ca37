"""gopherpipe gen: reads a service contract statically and writes typed client and server stubs.

Pipeline: `cli` -> `parse` (libcst; the contract is never imported or run) -> `model`
(plain frozen dataclasses) -> `compiler` (all decisions, in Python) -> `render` (Jinja2
templates that only loop and branch, then black).
"""
