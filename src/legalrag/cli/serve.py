"""`legalrag serve`: the browser chat."""

from __future__ import annotations

import argparse

from legalrag.cli.common import load_settings


def cmd_serve(args: argparse.Namespace) -> int:
    """The browser chat: builds the index on first run, then serves until Ctrl-C."""
    from legalrag.web.ui import serve

    settings = load_settings(args, host=args.host, port=args.port, llm_model_path=args.model)
    return serve(settings, verbose=args.verbose)


def register(sub: argparse._SubParsersAction) -> None:
    srv = sub.add_parser("serve", help="start the browser chat (127.0.0.1:7860 by default)",
                         description="Builds the index on first run (the chat starts once "
                                     "BM25 and exact lookup are live; embeddings continue in "
                                     "the background), then serves the chat and the "
                                     "knowledge base. Login: set auth_user and auth_password "
                                     "(LEGALRAG_AUTH_USER, LEGALRAG_AUTH_PASSWORD).")
    srv.add_argument("--host", default=None, help="address to listen on (default: 127.0.0.1)")
    srv.add_argument("--port", type=int, default=None, help="port (default: 7860)")
    srv.add_argument("--model", metavar="GGUF", default=None,
                     help="a GGUF file instead of the default model (llm_model_path)")
    srv.set_defaults(func=cmd_serve)
