"""`python -m edgenn` and the `edgenn` command. The CLI is imported inside the interrupt guard, so a
Ctrl-C while numpy and click load exits quietly as it does later."""

import sys


def main() -> None:
    try:
        from edgenn.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("edgenn: aborted\n")
        sys.exit(130)
    cli_main()


if __name__ == "__main__":
    main()
