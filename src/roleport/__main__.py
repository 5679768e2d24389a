"""`python -m roleport` runs the command line."""

from roleport.cli import main

main()
