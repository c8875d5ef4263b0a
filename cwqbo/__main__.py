"""`python -m cwqbo` is the same as the `cwqbo` command."""

from cwqbo.cli.entry import run

if __name__ == "__main__":
    run()
