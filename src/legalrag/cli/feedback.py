"""`legalrag feedback export`: the answers users marked, as an evaluation query file.

Every answer on which someone marked at least one source 这条是对的 becomes one line of
the JSONL that `legalrag eval` and `legalrag eval-answers` read (id, query, relevant), so
an organisation's own questions become its test set. The rating, the comment and the
sources marked not relevant come along in extra fields.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from legalrag.cli.common import load_settings
from legalrag.errors import LegalRagError


def cmd_feedback_export(args: argparse.Namespace) -> int:
    from legalrag.web.history import History, eval_records

    settings = load_settings(args)
    out = Path(args.out)
    if not out.parent.resolve().is_dir():
        raise LegalRagError(f"the folder of {out} does not exist",
                            fix="create it first or choose another --out")
    db = History.for_settings(settings)
    if not db.path.is_file():
        raise LegalRagError(f"no conversations are stored yet ({db.path} does not exist)",
                            fix="set data_dir to the folder `legalrag serve` uses")
    records = eval_records(db)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    tmp = out.with_name(out.name + ".part")
    try:
        tmp.write_text(lines, encoding="utf-8")
        tmp.replace(out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise LegalRagError(f"cannot write {out}: {e.strerror or e}") from None
    print(f"legalrag: {len(records)} marked question(s) written to {out}", file=sys.stderr)
    if not records:
        print("legalrag: no answer has a source marked right yet (mark them in the chat's "
              "sources, 这条是对的)", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    fb = sub.add_parser("feedback", help="export the feedback given in the chat",
                        description="Work with the feedback stored with the conversations "
                                    "(data_dir/history.sqlite3).")
    fbsub = fb.add_subparsers(dest="feedback_command", required=True)
    ex = fbsub.add_parser("export", help="write marked questions as an eval query file",
                          description=__doc__.split("\n\n")[1])
    ex.add_argument("--out", required=True, metavar="FILE.jsonl",
                    help="where to write (id, query, relevant per line)")
    ex.set_defaults(func=cmd_feedback_export)
