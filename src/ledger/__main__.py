"""``python -m ledger``: the command line."""

from ledger.entrypoints.cli.commands import main

main()
