"""`python -m callgate` is the `callgate` command."""

from .cli import main

main()
