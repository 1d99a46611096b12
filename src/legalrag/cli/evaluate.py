"""`legalrag eval`: retrieval metrics on a query file with gold citations."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from legalrag.cli.common import load_settings
from legalrag.errors import LegalRagError
from legalrag.vocab import MODES


def cmd_eval(args: argparse.Namespace) -> int:
    """Measure retrieval on a query file; exit 1 when a --fail-under bound is missed."""
    from tqdm import tqdm

    from legalrag.retrieval import evaluate as ev
    from legalrag.retrieval.retriever import Retriever

    modes = ev.check_modes(args.modes.split(","))
    try:
        ks = ev.check_ks(int(k) for k in args.k.split(",") if k.strip())
    except ValueError:
        raise LegalRagError(f"-k {args.k!r}: give whole numbers, e.g. -k 1,3,5,10") from None
    bounds = [ev.parse_bound(b) for b in args.fail_under]
    ev.check_bound_metrics(bounds, modes, ks)  # before the slow part
    queries = ev.load_queries(Path(args.queries))
    if args.split != "all":
        from legalrag.index.tune import split_of

        queries = [q for q in queries if split_of(q.id) == args.split]
        if not queries:
            raise LegalRagError(f"{args.queries}: no query falls in the {args.split} part",
                                fix="drop --split, or give a file with more queries")
    retriever = Retriever.open(load_settings(args))
    retriever.warm_up()  # models loaded before the clock of ms/query starts
    with tqdm(total=len(queries) * len(modes), desc="eval", unit="q", file=sys.stderr,
              dynamic_ncols=True, mininterval=0.5, disable=args.quiet) as bar:
        report = ev.run_eval(retriever, queries, modes, ks, include_old=args.include_old,
                             progress=bar.update, source=args.queries)
    print(ev.render_markdown(report), end="")
    if args.out:
        paths = ev.write_report(report, Path(args.out))
        print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    missed = ev.missed_bounds(report, bounds)
    for line in missed:
        print(f"legalrag: fail-under: {line}", file=sys.stderr)
    return 1 if missed else 0


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="measure retrieval on a JSONL query file",
                        description="Hit@k, Recall@k, MRR@10 and nDCG@10 of each retrieval "
                                    "mode on queries with gold citations (see "
                                    "docs/evaluation.md).")
    ev.add_argument("queries", metavar="QUERIES.jsonl",
                    help='one {"id", "query", "relevant": [citations]} per line')
    ev.add_argument("--modes", default=",".join(MODES),
                    help=f"comma-separated, from {', '.join(MODES)} (default: all three)")
    ev.add_argument("-k", default="1,3,5,10,20,100",
                    help="cut-offs for Hit@k and Recall@k (default: 1,3,5,10,20,100)")
    ev.add_argument("--out", metavar="DIR", help="write eval.json, eval.md, per_query.csv")
    ev.add_argument("--fail-under", action="append", default=[], metavar="MODE:METRIC=MIN",
                    help="exit 1 when a metric is below MIN, e.g. hybrid:recall@10=0.6 "
                         "(repeatable)")
    ev.add_argument("--include-old", action="store_true",
                    help="search superseded versions too")
    ev.add_argument("--split", choices=("all", "tune", "dev"), default="all",
                    help="only the questions of one part of the query-encoder split (by a "
                         "hash of the id): dev = the ones tuning never saw")
    ev.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=cmd_eval)
