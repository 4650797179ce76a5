"""`python -m gocoder` is the `gocoder` command."""

from gocoder.cli import main

main()
