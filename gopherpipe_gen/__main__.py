"""`python -m gopherpipe_gen ...` is `gopherpipe ...`, for environments without the script."""

from gopherpipe_gen.cli import main

main()
