"""`legalrag ask`: one question answered in the terminal, with the citation check."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from legalrag.cli.common import load_settings
from legalrag.errors import LegalRagError
from legalrag.vocab import LABEL_NAMES, LABEL_SIGNS, QUOTED, VERIFIED


def cmd_ask(args: argparse.Namespace) -> int:
    """Sources first, then the answer as it is generated, then the citation check."""
    from legalrag.answer.assistant import (
        Assistant,
        Final,
        Provision,
        Queued,
        Reading,
        Sources,
        Token,
        quote_provision,
        validate_question,
    )

    fmt, target = _export_target(args)  # checked before any work
    settings = load_settings(args, llm_model_path=args.model)
    validate_question(args.question, settings.max_question_chars)
    assistant = Assistant(settings)
    # Load the index and its models before the question's clock starts, so the retrieval
    # time printed is the search's, not the seconds a new process spends loading.
    t0 = time.perf_counter()
    assistant.retriever.warm_up()
    print(f"（已载入索引与检索模型，用时 {time.perf_counter() - t0:.1f} 秒）", file=sys.stderr,
          flush=True)
    out = sys.stdout
    quiet = args.json or (fmt == "md" and target is None)  # stdout is the document
    for event in assistant.stream(args.question, k=args.k):
        if isinstance(event, Final) and fmt:
            _export(event.answer, fmt, target)
        if quiet:
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
            for p in event.premise:
                print(p + "\n")
        elif isinstance(event, Provision):
            for i, p in enumerate(event.passages):
                print(quote_provision(p, i == 0) + "\n", flush=True)
        elif isinstance(event, Reading):
            print(f"（正在阅读 {event.sources} 条条文，约 {max(round(event.seconds), 1)} 秒）",
                  file=sys.stderr, flush=True)
            print("回答：", flush=True)
        elif isinstance(event, Queued):
            print(f"（排队中：前面还有 {event.ahead} 个问题）", file=sys.stderr, flush=True)
        elif isinstance(event, Token):
            out.write(event.text)
            out.flush()
        elif isinstance(event, Final):
            _print_checked(event.answer)
    return 0


def _export_target(args: argparse.Namespace) -> tuple[str | None, Path | None]:
    """(format, file) of --format/--out; the format follows the file's suffix when not
    given. UsageError-like LegalRagError when they do not fit together."""
    target = Path(args.out) if args.out else None
    fmt = args.format
    if fmt is None and target is not None:
        fmt = {".md": "md", ".markdown": "md", ".docx": "docx"}.get(target.suffix.lower())
        if fmt is None:
            raise LegalRagError(f"cannot tell the format of {target}",
                                fix="add --format md or --format docx")
    if fmt == "docx" and target is None:
        raise LegalRagError("--format docx needs --out FILE.docx")
    if args.json and fmt:
        raise LegalRagError("--json and --format cannot be used together")
    if target is not None and not target.parent.resolve().is_dir():
        raise LegalRagError(f"the folder of {target} does not exist",
                            fix="create it first or choose another --out")
    return fmt, target


def _export(answer, fmt: str, target: Path | None) -> None:
    from legalrag.answer.export import Exported, to_markdown, write

    items = [Exported(answer.question, answer)]
    if target is None:
        print(to_markdown(items))
        return
    write(items, target, fmt)
    print(f"已导出：{target}", file=sys.stderr)


def _without_premise(answer) -> str:
    """The answer's text without the notes on the question's citations at its head: the
    terminal showed them under the sources already."""
    head = "".join(f"{p}\n\n" for p in answer.premise)
    return answer.text.removeprefix(head) if head else answer.text


def _print_checked(answer) -> None:
    text = _without_premise(answer)
    if answer.abstained:
        print(text)
        return
    print("\n")
    if answer.citations:
        print("引用核对：")
        seen: dict[tuple[str, str, str], int] = {}
        for c in answer.citations:  # one line per distinct citation, with a count
            if c.kind == "passage":
                continue
            key = (c.raw, c.label, c.note)
            seen[key] = seen.get(key, 0) + 1
        for (raw, label, note), n in seen.items():
            times = f" ×{n}" if n > 1 else ""
            print(f"  {LABEL_SIGNS[label]} {raw}{times}  {LABEL_NAMES[label]}"
                  + (f"：{note}" if note else ""))
    else:
        print("引用核对：回答中没有引用。")
    if any(c.label not in (VERIFIED, QUOTED) for c in answer.citations) or answer.notes:
        # The streamed text showed unchecked citations as written; repeat the answer with
        # each one marked, so nothing invented is left on screen unmarked.
        print("\n核对后的回答（〔〕内为核对标记）：")
        print(text)
    else:
        print()
        print(text.rsplit("\n\n", 1)[-1])  # the disclaimer
    t = answer.timings
    print(f"\n用时：检索 {t.retrieval_ms:.0f} ms，首字 {t.first_token_ms / 1000:.1f} s，"
          f"共 {t.total_ms / 1000:.1f} s；提示 {t.prompt_tokens} tokens"
          f"（缓存 {t.cached_tokens}），回答 {t.completion_tokens} tokens；模型 {answer.model}",
          file=sys.stderr)


def register(sub: argparse._SubParsersAction) -> None:
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
    ask.add_argument("--format", choices=("md", "docx"), default=None,
                     help="also write the question, the checked answer and the full text of "
                          "every cited article as Markdown or Word (md without --out: "
                          "print the Markdown instead of the terminal view)")
    ask.add_argument("--out", metavar="FILE", default=None,
                     help="file for --format (the format follows .md or .docx if not given)")
    ask.set_defaults(func=cmd_ask)
