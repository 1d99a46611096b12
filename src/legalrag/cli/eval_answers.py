"""`legalrag eval-answers`: the assistant's answers to questions with gold articles,
measured (see legalrag.answer.evaluate and docs/evaluation.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from legalrag.cli.common import load_settings
from legalrag.errors import LegalRagError


def cmd_eval_answers(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from legalrag.answer.assistant import Assistant
    from legalrag.answer.evaluate import (
        render_answer_markdown,
        run_answer_eval,
        write_answer_report,
    )
    from legalrag.index.tune import split_of
    from legalrag.retrieval.evaluate import load_queries

    if args.n is not None and args.n < 1:
        raise LegalRagError(f"-n {args.n}: give a positive number of questions")
    queries = load_queries(Path(args.queries))
    if args.split != "all":
        queries = [q for q in queries if split_of(q.id) == args.split]
        if not queries:
            raise LegalRagError(f"{args.queries}: no query falls in the {args.split} part",
                                fix="drop --split, or give a file with more queries")
    queries = queries[: args.n] if args.n else queries
    settings = load_settings(args, llm_model_path=args.model)
    assistant = Assistant(settings)
    with tqdm(total=len(queries), desc="answers", unit="q", file=sys.stderr,
              dynamic_ncols=True, mininterval=1.0, disable=args.quiet) as bar:
        report = run_answer_eval(assistant, queries, progress=bar.update, source=args.queries,
                                 settings={"split": args.split, "n": len(queries),
                                           "llm_max_tokens": settings.llm_max_tokens,
                                           "answer_top_k": settings.answer_top_k})
    print(render_answer_markdown(report), end="")
    if args.out:
        paths = write_answer_report(report, Path(args.out))
        print(f"wrote {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval-answers", help="measure the assistant's answers on a JSONL "
                                             "query file",
                        description="Asks every question (the configured model), then "
                                    "reports per question and in aggregate: abstained, gold "
                                    "among the sources, gold cited with a verified label, "
                                    "articles cited, labels, loops, truncations, times.")
    ev.add_argument("queries", metavar="QUERIES.jsonl",
                    help='one {"id", "query", "relevant": [citations]} per line')
    ev.add_argument("--split", choices=("all", "tune", "dev"), default="all",
                    help="only one part of the query-encoder split (dev: never tuned on)")
    ev.add_argument("-n", type=int, default=None, help="only the first N questions")
    ev.add_argument("--out", metavar="DIR",
                    help="write answers.json (with the answers), answers.md, per_question.csv")
    ev.add_argument("--model", metavar="GGUF", default=None,
                    help="a GGUF file instead of the default model (llm_model_path)")
    ev.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    ev.set_defaults(func=cmd_eval_answers)
