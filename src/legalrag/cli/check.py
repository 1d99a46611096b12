"""`legalrag check`: label every citation in any text against the corpus, without a model.

    legalrag check contract.txt          # each citation, its label, the article's text
    legalrag check - --json < reply.md   # one JSON object per citation
    legalrag check -                     # paste, then Ctrl-D

Lawyers and students meet citations everywhere (a contract, a court paper, another
chatbot's answer); this reads any UTF-8 text and says of each 《法》第N条 whether it is in
force, repealed (and by what, where the corpus says), invented or unreadable. Exit status:
0 when every citation is in force (or there is none), 1 otherwise, 2 on unusable input.
The labels come from answer.check.check_text, the function behind the answer check and the
browser's 核查引用 tab; the corpus facts come from the live index's article list only (no
embedding model is loaded).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from legalrag.cli.common import load_settings
from legalrag.errors import InputFileError
from legalrag.vocab import IN_FORCE, IN_FORCE_SCOPE, LABEL_NAMES, LABEL_SIGNS

MAX_INPUT_BYTES = 5 * 1024 * 1024  # a court paper is well under 1 MB; a 5 MB paste is a mistake


def read_document(name: str) -> str:
    """The text to check from a file name, or stdin for '-'; InputFileError when it is
    missing, a folder, too large, binary or not UTF-8, naming the fix."""
    where = "stdin" if name == "-" else name
    try:
        data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1) if name == "-" else \
            Path(name).read_bytes()
    except FileNotFoundError:
        raise InputFileError(where, 0, "no such file",
                             fix="give the path of a text file, or - to read stdin") from None
    except IsADirectoryError:
        raise InputFileError(where, 0, "is a folder, not a text file",
                             fix="give the path of one text file") from None
    except OSError as e:
        raise InputFileError(where, 0, f"cannot be read: {e.strerror}") from None
    if len(data) > MAX_INPUT_BYTES:
        raise InputFileError(where, 0, f"larger than {MAX_INPUT_BYTES // (1024 * 1024)} MB",
                             fix="check the part of the document that cites statutes")
    if b"\x00" in data[:65536]:
        raise InputFileError(where, 0, "binary file (contains NUL bytes), not text",
                             fix="save the document as plain text (.txt, UTF-8) first")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise InputFileError(where, line, f"not UTF-8 (byte 0x{data[e.start]:02x} at offset "
                                          f"{e.start})",
                             fix="re-save the file as UTF-8 (e.g. iconv -f GBK -t UTF-8)"
                             ) from None


def cmd_check(args: argparse.Namespace) -> int:
    from legalrag.answer.check import CorpusFacts, check_text

    text = read_document(args.file)
    facts = CorpusFacts.from_index(load_settings(args).index_dir)
    checked = [c for c in check_text(text, facts)]
    for c in checked:
        line = text.count("\n", 0, c.start) + 1
        if args.json:
            print(json.dumps({**c.to_dict(), "line": line, "citation": c.citation,
                              "text": c.cited_text}, ensure_ascii=False))
            continue
        print(f"{LABEL_SIGNS[c.label]} 第{line}行 {c.raw}  {LABEL_NAMES[c.label]}"
              + (f"：{c.note}" if c.note else ""))
        if c.cited_text:
            for para in c.cited_text.splitlines():
                print(f"    {para}")
    if not args.json:
        counts: dict[str, int] = {}
        for c in checked:
            counts[c.label] = counts.get(c.label, 0) + 1
        summary = "，".join(f"{LABEL_NAMES[k]} {n}" for k, n in counts.items())
        if IN_FORCE in counts:
            print(f"{IN_FORCE_SCOPE}；请对照上面列出的原文。")
        print(f"共 {len(checked)} 处引用" + (f"：{summary}" if summary else "（没有找到引用）"))
    return 0 if all(c.label == IN_FORCE for c in checked) else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check", help="label every statute citation in a text (in force, repealed, invented)",
        description="Reads any text (a contract, a court paper, another chatbot's answer) "
                    "and labels every citation in it against the corpus: in_force, "
                    "repealed, invented, invalid, misquoted or unresolved. No model is "
                    "loaded. Exit status 0 when every citation is in force, 1 otherwise, "
                    "2 when the input cannot be used.")
    p.add_argument("file", nargs="?", default="-",
                   help="a UTF-8 text file, or - (the default) for stdin")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per citation (raw, law, number, suffix, paragraph, "
                        "item, label, note, line, text)")
    p.set_defaults(func=cmd_check)
