"""h2q_lib: reproduce and audit the H2Q-AGI WikiText-103 training report."""

__version__ = "0.1.0"


def main(argv: list[str] | None = None) -> int:
    """The ``h2q`` command's entry point: ``cli.main``, imported here so that Ctrl-C while
    torch is still importing (the first second of every command) ends in one line, as
    Ctrl-C does later."""
    import sys

    try:
        from h2q_lib.cli import main as cli_main
    except KeyboardInterrupt:
        print("h2q: interrupted", file=sys.stderr)
        return 130
    return cli_main(argv)
