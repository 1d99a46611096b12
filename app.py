"""Start the legalrag browser chat: ``python app.py [--host H] [--port P]``.

A thin entry point for people who expect an app.py; it is the ``legalrag serve`` command
(settings from legalrag.toml and LEGALRAG_* variables, see README "Start the chat").
"""

import sys

from legalrag.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
