"""`python -m ratline` runs the `ratline` command."""

from ratline.cli.main import main

main()
