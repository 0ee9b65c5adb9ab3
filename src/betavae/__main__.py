"""``python -m betavae``: the ``betavae`` command, for an environment whose scripts are not on PATH."""

from betavae.cli import main

if __name__ == "__main__":
    main()
