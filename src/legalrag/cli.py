"""The `legalrag` command: a thin shell over the library.

    legalrag index build | update | info
    legalrag retrieve "问题" [-k 10] [--mode hybrid|bm25|dense] [--json]
    legalrag ask "问题" [--k 5] [--json]
    legalrag eval QUERIES.jsonl [--modes …] [-k …] [--out DIR] [--fail-under …]
    legalrag serve [--host H] [--port P]

Errors the user can fix print as one line on stderr with exit code 2; nothing else does.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from legalrag.version import __version__
from legalrag.errors import LegalRagError

log = logging.getLogger("legalrag")


def _settings(args: argparse.Namespace, **extra: object):
    from legalrag.config import Settings

    return Settings.load(
        Path(args.config) if args.config else None,
        corpus_dir=args.corpus, index_dir=args.index_dir, **extra,
    )


# -- index ----------------------------------------------------------------------------------

def cmd_index(args: argparse.Namespace) -> int:
    from legalrag.index.build import build_index
    from legalrag.progress import terminal_progress

    settings = _settings(args)
    if args.action == "info":
        return _index_info(settings, args.json)
    result = build_index(settings, update=args.action == "update", dense=not args.no_dense,
                         progress=terminal_progress(quiet=args.quiet))
    for err in result.report.skipped:
        print(f"skipped {err}", file=sys.stderr)
    for warn in result.report.warnings:
        print(f"warning {warn}", file=sys.stderr)
    if args.action == "update" and not result.up_to_date:
        print(f"changed files: {len(result.changed_files)}, removed: "
              f"{len(result.removed_files)}", file=sys.stderr)
        for f in result.changed_files[:20]:
            print(f"  + {f}", file=sys.stderr)
        for f in result.removed_files[:20]:
            print(f"  - {f}", file=sys.stderr)
    print(result.summary())
    return 0


def _index_info(settings, as_json: bool) -> int:
    from legalrag.index.store import IndexStore, read_manifest

    build = IndexStore(settings.index_dir).current()
    manifest = read_manifest(build)
    if as_json:
        print(json.dumps({"build": build.name, **{k: v for k, v in manifest.items()
                                                   if k != "checksums"}},
                         ensure_ascii=False, indent=1))
        return 0
    c = manifest["counts"]
    skipped = manifest["corpus"]["skipped"]
    print(f"index     {build}")
    print(f"built     {manifest['built_at']} by legalrag {manifest['package_version']}")
    print(f"parts     {', '.join(manifest['parts'])}")
    print(f"corpus    {manifest['corpus']['root']}: {len(manifest['corpus']['files'])} files, "
          f"{len(skipped)} skipped")
    print(f"counts    {c['laws']} laws, {c['versions']} versions, "
          f"{c['in_force']} articles in force / {c['articles']} all")
    print(f"embedding {manifest['embedding']['name']} (dim {manifest['embedding']['dim']}, "
          f"{manifest['embedding']['fingerprint']})")
    print(f"segmenter {manifest['segmenter']['name']}, dictionary "
          f"{manifest['segmenter']['dictionary_hash']} ({manifest['segmenter']['terms']} terms)")
    qe = manifest.get("query_encoder")
    if qe:
        print(f"questions embedded by the tuned query encoder ({qe['examples']} questions of "
              f"{qe['trained_on']}, {qe['steps']} steps)")
    else:
        print("questions embedded by the base model (no tuned query encoder in this index)")
    print(f"timings   {manifest['build_seconds']}")
    return 0


# -- retrieve -------------------------------------------------------------------------------

def cmd_retrieve(args: argparse.Namespace) -> int:
    from legalrag.retrieval.retriever import Retriever

    settings = _settings(args)
    retriever = Retriever.open(settings)
    hits = retriever.search(args.query, k=args.k, mode=args.mode, include_old=args.include_old)
    if "dense" not in retriever.parts:
        print("note: the dense index is not built yet; results use BM25 and exact lookup",
              file=sys.stderr)
    if args.json:
        for h in hits:
            print(json.dumps(h.to_dict(), ensure_ascii=False))
        return 0
    if not hits:
        print("no matching articles")
    for h in hits:
        a = h.article
        status = "" if a.in_force else "  [不是现行有效版本 / not in force]"
        ranks = ", ".join(f"{k}#{v}" for k, v in sorted(h.ranks.items()))
        print(f"{h.rank:>3}. {a.citation}  ({a.version or '日期不详'}){status}")
        print(f"     {' › '.join(a.path)}  [{ranks}]")
        text = a.text if args.full else (a.text[:160] + ("…" if len(a.text) > 160 else ""))
        for line in text.splitlines():
            print(f"     {line}")
    return 0


# -- main -----------------------------------------------------------------------------------

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

    idx = sub.add_parser("index", help="build, update or describe the index")
    idx.add_argument("action", choices=["build", "update", "info"])
    idx.add_argument("--no-dense", action="store_true",
                     help="BM25 and exact lookup only (no embeddings)")
    idx.add_argument("--json", action="store_true", help="info as JSON")
    idx.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    idx.set_defaults(func=cmd_index)

    ret = sub.add_parser("retrieve", help="the articles that best match a question")
    ret.add_argument("query")
    ret.add_argument("-k", type=int, default=10)
    ret.add_argument("--mode", choices=["hybrid", "bm25", "dense"], default="hybrid")
    ret.add_argument("--include-old", action="store_true", help="include superseded versions")
    ret.add_argument("--json", action="store_true", help="one JSON object per hit")
    ret.add_argument("--full", action="store_true", help="print whole article texts")
    ret.set_defaults(func=cmd_retrieve)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return p


# Subcommands defined in the modules below register themselves here, so each stays small.
_EXTRA_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = []


# -- eval -----------------------------------------------------------------------------------

def cmd_eval(args: argparse.Namespace) -> int:
    """Measure retrieval on a query file; exit 1 when a --fail-under bound is missed."""
    from tqdm import tqdm

    from legalrag import evaluate as ev
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
    retriever = Retriever.open(_settings(args))
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


def _register_eval(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("eval", help="measure retrieval on a JSONL query file",
                        description="Hit@k, Recall@k, MRR@10 and nDCG@10 of each retrieval "
                                    "mode on queries with gold citations (see "
                                    "docs/evaluation.md).")
    ev.add_argument("queries", metavar="QUERIES.jsonl",
                    help='one {"id", "query", "relevant": [citations]} per line')
    ev.add_argument("--modes", default="bm25,dense,hybrid",
                    help="comma-separated, from bm25, dense, hybrid (default: all three)")
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


_EXTRA_COMMANDS.append(_register_eval)


# -- ask ------------------------------------------------------------------------------------

_CHECK_SIGNS = {"verified": "✓", "not_retrieved": "?", "invented": "✗", "repealed": "✗",
                "invalid": "✗"}
_CHECK_NAMES = {"verified": "已核实", "not_retrieved": "不在来源中", "invented": "法库中不存在",
                "repealed": "已失效", "invalid": "无效引用"}


def cmd_ask(args: argparse.Namespace) -> int:
    """Sources first, then the answer as it is generated, then the citation check."""
    from legalrag.answer.assistant import Assistant, Final, Queued, Sources, Token

    settings = _settings(args, llm_model_path=args.model)
    assistant = Assistant(settings)
    out = sys.stdout
    for event in assistant.stream(args.question, k=args.k):
        if args.json:
            if isinstance(event, Final):
                print(json.dumps(event.answer.to_dict(), ensure_ascii=False))
            continue
        if isinstance(event, Sources):
            if event.rewritten_query != event.question:
                print(f"检索问题：{event.rewritten_query}")
            print(f"来源（检索用时 {event.retrieval_ms:.0f} ms）：")
            for h in event.hits:
                a = h.article
                old = "" if a.in_force else "  [旧版本，已非现行有效]"
                print(f" [{h.rank}] {a.citation}  {' › '.join(a.path)}{old}")
            print()
            if not event.abstained:
                print("回答：", flush=True)
        elif isinstance(event, Queued):
            print(f"（排队中：前面还有 {event.ahead} 个问题）", file=sys.stderr, flush=True)
        elif isinstance(event, Token):
            out.write(event.text)
            out.flush()
        elif isinstance(event, Final):
            _print_checked(event.answer)
    return 0


def _print_checked(answer) -> None:
    if answer.abstained:
        print(answer.text)
        return
    print("\n")
    if answer.citations:
        print("引用核对：")
        seen: dict[tuple[str, str, str], int] = {}
        for c in answer.citations:  # one line per distinct citation, with a count
            key = (c.raw, c.label, c.note)
            seen[key] = seen.get(key, 0) + 1
        for (raw, label, note), n in seen.items():
            times = f" ×{n}" if n > 1 else ""
            print(f"  {_CHECK_SIGNS[label]} {raw}{times}  {_CHECK_NAMES[label]}"
                  + (f"：{note}" if note else ""))
    else:
        print("引用核对：回答中没有引用。")
    if any(c.label != "verified" for c in answer.citations) or answer.notes:
        # The streamed text showed unchecked citations as written; repeat the answer with
        # each one marked, so nothing invented is left on screen unmarked.
        print("\n核对后的回答（〔〕内为核对标记）：")
        print(answer.text)
    else:
        print()
        print(answer.text.rsplit("\n\n", 1)[-1])  # the disclaimer
    t = answer.timings
    print(f"\n用时：检索 {t.retrieval_ms:.0f} ms，首字 {t.first_token_ms / 1000:.1f} s，"
          f"共 {t.total_ms / 1000:.1f} s；提示 {t.prompt_tokens} tokens"
          f"（缓存 {t.cached_tokens}），回答 {t.completion_tokens} tokens；模型 {answer.model}",
          file=sys.stderr)


def _register_ask(sub: argparse._SubParsersAction) -> None:
    ask = sub.add_parser("ask", help="answer a question from the statutes, with checked "
                                     "citations",
                         description="Retrieves the most relevant articles, prints them, "
                                     "streams an answer from the local model, then checks "
                                     "every citation in it against the sources and the "
                                     "corpus.")
    ask.add_argument("question")
    ask.add_argument("--k", "-k", type=int, default=None,
                     help="articles to retrieve (default: answer_top_k, 5)")
    ask.add_argument("--json", action="store_true",
                     help="print the checked answer as one JSON object, nothing else")
    ask.add_argument("--model", metavar="GGUF", default=None,
                     help="a GGUF file instead of the default model (llm_model_path)")
    ask.set_defaults(func=cmd_ask)


_EXTRA_COMMANDS.append(_register_ask)


# -- serve ----------------------------------------------------------------------------------

def cmd_serve(args: argparse.Namespace) -> int:
    """The browser chat: builds the index on first run, then serves until Ctrl-C."""
    from legalrag.web.ui import serve

    settings = _settings(args, host=args.host, port=args.port, llm_model_path=args.model)
    return serve(settings, verbose=args.verbose)


def _register_serve(sub: argparse._SubParsersAction) -> None:
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


_EXTRA_COMMANDS.append(_register_serve)


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
