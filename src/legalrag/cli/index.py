"""`legalrag index build | update | info`."""

from __future__ import annotations

import argparse
import json
import sys

from legalrag.cli.common import load_settings


def cmd_index(args: argparse.Namespace) -> int:
    from legalrag.index.build import build_index
    from legalrag.progress import terminal_progress

    settings = load_settings(args)
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
        if result.reparsed and not result.changed_files and not result.removed_files:
            print("the files are unchanged, but this version of legalrag reads them "
                  "differently: the articles it reads differently are updated", file=sys.stderr)
    print(result.summary())
    return 0


def _index_info(settings, as_json: bool) -> int:
    from legalrag.index.store import IndexStore
    from legalrag.index.tune import outdated

    opened = IndexStore(settings.index_dir).open_live()
    opened.release()
    build, manifest = opened.path, opened.manifest
    if as_json:
        print(json.dumps({"build": build.name, "fallback": opened.fallback,
                          **{k: v for k, v in manifest.items() if k != "checksums"}},
                         ensure_ascii=False, indent=1))
        return 0
    if opened.fallback:
        print(f"WARNING   {opened.fallback} (fix: run `legalrag index update`)")
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
        stale = outdated(manifest)
        if stale:
            print(f"WARNING   the query encoder was trained with other settings than this "
                  f"version's: {stale} (fix: run `legalrag index build`)")
    else:
        print("questions embedded by the base model (no tuned query encoder in this index)")
    print(f"timings   {manifest['build_seconds']}")
    return 0




def register(sub: argparse._SubParsersAction) -> None:
    idx = sub.add_parser("index", help="build, update or describe the index")
    idx.add_argument("action", choices=["build", "update", "info"])
    idx.add_argument("--no-dense", action="store_true",
                     help="BM25 and exact lookup only (no embeddings)")
    idx.add_argument("--json", action="store_true", help="info as JSON")
    idx.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    idx.set_defaults(func=cmd_index)
