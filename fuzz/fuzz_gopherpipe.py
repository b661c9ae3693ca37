"""The atheris harness: every target of `targets.py` in one process.

    python fuzz/fuzz_gopherpipe.py [libFuzzer options] [CORPUS_DIR...]
    python fuzz/fuzz_gopherpipe.py CRASH_FILE        # replay one input

The first byte of an input picks the target, so one coverage-guided run spreads over
all of them and keeps what reaches new code in any. `make fuzz` runs it; see README.md.
"""

import sys
from pathlib import Path

import atheris

ROOT = Path(__file__).resolve().parent.parent
# The checkout this file is in, not whatever copy of the runtime the venv points at.
sys.path[:0] = [str(ROOT), str(ROOT / "fuzz")]

with atheris.instrument_imports():
    import targets

    # Imports the generated stubs, so that they are instrumented too.
    targets.setup(stub_dir=ROOT / "fuzz" / ".work" / "stubs")


def main() -> None:
    print(
        f"targets: {', '.join(targets.TARGET_NAMES)}; "
        f"{len(targets.converter_names())} generated converters",
        flush=True,
    )
    atheris.Setup(sys.argv, targets.dispatch)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
