"""Write the live index's article vectors to the file a first build takes them from.

    .venv/bin/python scripts/ship_vectors.py [--out FILE]

Run it after the shipped corpus (corpus/) or the embedding model changes and a full
`legalrag index build` has finished: it writes one vector per distinct embedded text
(index.build.embed_text), keyed by its content key, as int8 with a scale per vector, and
records the embedder that made them (index/shipped.py). The default FILE is the setting
shipped_vectors. Articles a maintainer adds later need no new file: a build embeds what the
file does not hold.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, help="where to write (default: the setting)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from legalrag.config import Settings
    from legalrag.index.build import content_key, embed_text
    from legalrag.index.embed import embedder_identity
    from legalrag.index.shipped import write_shipped
    from legalrag.retrieval.retriever import Retriever

    settings = Settings.load()
    out = args.out or Path(settings.shipped_vectors)
    retriever = Retriever.open(settings)
    if retriever.dense is None:
        print("the live index has no vectors yet: wait for `legalrag index build` to finish",
              file=sys.stderr)
        return 1
    identity = retriever.manifest["embedding"]
    if identity["fingerprint"] != embedder_identity(settings)["fingerprint"]:
        print("the live index was embedded by another model than the settings name: "
              "run `legalrag index build` first", file=sys.stderr)
        return 1
    first: dict[str, int] = {}
    for i, a in enumerate(retriever.articles):
        first.setdefault(content_key(embed_text(a)), i)
    rows = list(first.values())
    vectors = retriever.dense.reconstruct_n(0, retriever.dense.ntotal)[rows]
    write_shipped(out, list(first), vectors, identity)
    print(f"{len(rows)} vectors of {identity['name']} written to {out} "
          f"({out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
