"""What every subcommand shares: settings from the global options."""

from __future__ import annotations

import argparse
from pathlib import Path


def load_settings(args: argparse.Namespace, **extra: object):
    """Settings from --config, --corpus and --index-dir, then extra overrides."""
    from legalrag.config import Settings

    return Settings.load(
        Path(args.config) if args.config else None,
        corpus_dir=args.corpus, index_dir=args.index_dir, **extra,
    )
