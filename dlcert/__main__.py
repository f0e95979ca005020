"""``python -m dlcert``."""

from dlcert.cli import main

main()
