"""`python -m playground.cli`: the console script without installing it (tests and `serve` use it)."""

from playground.cli.root import main

if __name__ == "__main__":
    main()
