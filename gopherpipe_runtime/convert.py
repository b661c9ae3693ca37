"""The stub-support module: what generated stubs import (``from gopherpipe_runtime.convert
import check_args, ...``). Its home is `wire.convert`; this path stays, because stubs
users have committed name it."""

from .wire.convert import *  # noqa: F403 -- every public name, for committed stubs
