"""The `legalrag` command: a thin shell over the library.

    legalrag index build | update | info
    legalrag retrieve "问题" [-k 10] [--mode hybrid|bm25|dense] [--json]
    legalrag ask "问题" [--k 5] [--json]
    legalrag check [FILE|-] [--json]
    legalrag eval QUERIES.jsonl [--modes …] [-k …] [--out DIR] [--fail-under …]
    legalrag eval-answers QUERIES.jsonl [--split dev] [-n N] [--out DIR]
    legalrag feedback export --out FILE.jsonl
    legalrag serve [--host H] [--port P]

Each subcommand is a module of this package with ``register(sub)`` and its ``cmd_*``
function; COMMANDS lists them in the order --help shows. Errors the user can fix print as
one line on stderr with exit code 2; nothing else does.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from legalrag.cli import ask, check, eval_answers, evaluate, feedback, index, retrieve, serve
from legalrag.errors import LegalRagError
from legalrag.version import __version__

log = logging.getLogger("legalrag")

COMMANDS = (index, retrieve, ask, check, evaluate, eval_answers, feedback, serve)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="legalrag",
        description="Answer Chinese legal questions from the statutes, locally.",
    )
    p.add_argument("--version", action="version", version=f"legalrag {__version__}")
    p.add_argument("--config", help="settings file (default: ./legalrag.toml if present)")
    p.add_argument("--corpus", help="corpus folder (default: corpus)")
    p.add_argument("--index-dir", help="index folder (default: indexes)")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)

    for command in COMMANDS:
        command.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except LegalRagError as e:
        print(f"legalrag: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("legalrag: interrupted; the live index is unchanged", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
