"""Query-side fine-tuning of the embedding model, on the CPU, in minutes.

Laypeople write 老板不发工资; the statute says 拖欠劳动报酬. We teach the model that mapping
on real questions with their gold articles, but only on the question side: the articles
keep the vectors the base model gave them in the index, and a copy of the model learns to
place questions near their gold articles among *all* in-force articles (a full softmax over
the index, so every other article is a negative). Two consequences:

- training runs the model on short questions only (~40 tokens), so it takes minutes on two
  cores instead of the hour a two-tower fine-tune takes, and the corpus is never re-embedded;
- the index stays valid: the tuned model is a query encoder for the base model's space.

Only the tune part of a deterministic split is used (``split_of``); the dev part measures
whether the gain carries over to questions the model never saw. Seeds are fixed and torch
uses a fixed thread count, so a rerun on the same machine reproduces the weights.

It runs as the last stage of `legalrag index build` when the setting tune_questions names
a question file (the STARD training split by default); the encoder is stored inside the
index, and retrieval embeds questions with it. Beside it the stage keeps how many tune
questions have each article as a gold one (``write_prior``): the reranker's article prior.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from legalrag.citations import LawNames, find_citations
from legalrag.errors import IndexCorruptError, LegalRagError
from legalrag.progress import ProgressFactory
from legalrag.records import Article

log = logging.getLogger(__name__)

DEV_SHARE = 5  # one question in five is dev
PRIOR_FILE = "article-prior.json"  # beside the tuned encoder: how often each article is gold


def split_of(query_id: str) -> str:
    """'dev' or 'tune', fixed by the question id (md5), independent of file order."""
    h = int(hashlib.md5(query_id.encode("utf-8")).hexdigest(), 16)
    return "dev" if h % DEV_SHARE == 0 else "tune"


@dataclass(frozen=True)
class TuneConfig:
    epochs: int = 6
    batch_size: int = 32
    learning_rate: float = 2e-4
    warmup: float = 0.1
    # 1 / temperature of the softmax over articles. 50 rather than 20: with a sharper
    # softmax the nearest wrong articles weigh more in the loss, and out of fold (an
    # encoder trained on one half of the tune part, judged on the other) dense Recall@10
    # rises from 0.583 to 0.624 (bench/tune_encoder.py --folds, docs/evaluation.md).
    scale: float = 50.0
    max_length: int = 64
    seed: int = 42
    threads: int = 2
    # Weight-space ensembling (WiSE-FT): the saved encoder is mix * trained + (1 − mix) *
    # base weights. Training hard and mixing back generalizes better than training
    # gently: at scale 20, dev dense Recall@10 0.609 at 2e-4 × 6 epochs mixed 0.6, against
    # 0.565 for 1e-4 × 5 epochs unmixed. At scale 50 the best share is higher (0.8 to 1
    # out of fold; docs/evaluation.md).
    mix: float = 0.8
    # How a question with several gold articles is scored (gold_loss below). "each" rather
    # than "sum": out of fold dense Recall@10 0.624 -> 0.643, Recall@100 0.850 -> 0.861
    # (bench/tune_encoder.py --folds --gold-loss each, docs/evaluation.md).
    gold_loss: str = "each"


# What an encoder trained before a TuneConfig field existed was trained with.
BEFORE_FIELD = {"gold_loss": "sum"}


@dataclass(frozen=True)
class Example:
    query: str
    gold_rows: tuple[int, ...]  # rows of the in-force article matrix


def load_questions(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise LegalRagError(f"{path}:{n}: not JSON ({e.msg})") from None
    return rows


def make_examples(questions: Sequence[dict], articles: Sequence[Article], split: str = "tune"
                  ) -> tuple[list[Example], list[int]]:
    """Examples of one split, and the rows of the in-force articles they live among."""
    rows = [i for i, a in enumerate(articles) if a.in_force]
    position = {r: p for p, r in enumerate(rows)}
    row_of = {(a.law, a.number, a.suffix): i for i, a in enumerate(articles) if a.in_force}
    names = LawNames(sorted({a.law for a in articles}))
    examples = []
    for q in questions:
        if split_of(q["id"]) != split:
            continue
        gold = set()
        for cite in q["relevant"]:
            for ref in find_citations(cite):
                i = row_of.get((names.resolve(ref.law), ref.number, ref.suffix))
                if i is not None:
                    gold.add(position[i])
        if gold:
            examples.append(Example(q["query"], tuple(sorted(gold))))
    return examples, rows


def gold_counts(questions: Sequence[dict], articles: Sequence[Article], split: str = "tune"
                ) -> dict[tuple[str, int, int], int]:
    """How many questions of one split have each in-force article among their gold ones."""
    names = LawNames(sorted({a.law for a in articles}))
    known = {(a.law, a.number, a.suffix) for a in articles if a.in_force}
    counts: Counter = Counter()
    for q in questions:
        if split_of(q["id"]) != split:
            continue
        keys = {(names.resolve(ref.law), ref.number, ref.suffix)
                for cite in q["relevant"] for ref in find_citations(cite)}
        counts.update(keys & known)
    return dict(counts)


def write_prior(questions: Path, articles: Sequence[Article], out: Path) -> None:
    """Write the tune split's gold counts (gold_counts) to out/PRIOR_FILE."""
    counts = gold_counts(load_questions(questions), articles, "tune")
    rows = [[law, number, suffix, n] for (law, number, suffix), n in sorted(counts.items())]
    (out / PRIOR_FILE).write_text(json.dumps(
        {"questions": questions.name, "split": "tune", "counts": rows}, ensure_ascii=False),
        encoding="utf-8")


def outdated(manifest: dict) -> str | None:
    """What differs between the settings the index's query encoder was trained with and
    this version's TuneConfig, as one line for a warning; None when they agree or the index
    has no tuned encoder. `legalrag index update` keeps the live encoder, so after an
    upgrade that changed TuneConfig only `legalrag index build` trains the new one (and the
    shipped reranker weights were fitted with the new one).

    >>> outdated({"query_encoder": {"config": {**TuneConfig().__dict__, "scale": 20.0}}})
    'scale 20.0 (now 50.0)'
    >>> outdated({"query_encoder": {"config": dict(TuneConfig().__dict__)}}) is None
    True
    """
    trained = (manifest.get("query_encoder") or {}).get("config")
    if not trained:
        return None
    trained = {**BEFORE_FIELD, **trained}
    now = TuneConfig().__dict__
    diff = [f"{k} {trained.get(k)} (now {v})" for k, v in now.items()
            if k != "threads" and trained.get(k) != v]
    return ", ".join(diff) or None


def read_prior(folder: Path) -> dict[tuple[str, int, int], int] | None:
    """The counts write_prior kept in folder; None when it has none (an encoder trained
    before the prior existed, or one trained elsewhere)."""
    path = folder / PRIOR_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {(str(law), int(number), int(suffix)): int(n)
                for law, number, suffix, n in data["counts"]}
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise IndexCorruptError(f"{path} is damaged ({type(e).__name__}: {e})",
                                fix="run `legalrag index build`") from None


def gold_loss(logits, gold_mask, kind: str):
    """The training loss of a batch: logits [questions, articles], gold_mask marks each
    question's gold articles.

    "sum" is −log(the golds' summed softmax probability): one gold far ahead satisfies it
    and the question's other golds are left where they are. "each" scores every gold on
    its own against the non-gold articles, −log(e^g / (e^g + Σ non-gold)), and averages
    over the question's golds: Recall@k counts each gold, and a question's second gold
    article (the procedure beside the rule, the general provision beside the specific one)
    is what the sum lets go.
    """
    import torch

    if kind == "each":
        log_rest = torch.logsumexp(logits.masked_fill(gold_mask, -1e4), dim=1)
        per_gold = torch.nn.functional.softplus(log_rest[:, None] - logits)
        return ((per_gold * gold_mask).sum(1) / gold_mask.sum(1)).mean()
    if kind == "sum":
        log_all = torch.logsumexp(logits, dim=1)
        log_gold = torch.logsumexp(logits.masked_fill(~gold_mask, -1e4), dim=1)
        return (log_all - log_gold).mean()
    raise ValueError(f"gold_loss {kind!r}: use 'each' or 'sum'")


def fine_tune_queries(model_path: Path, examples: Sequence[Example], doc_vectors, out: Path,
                      config: TuneConfig, progress: Callable[[int], None] | None = None,
                      *, frozen: str = "") -> dict:
    """Train a query encoder against fixed article vectors; save a sentence-transformers
    model folder at out and return a report. Parameters whose name contains `frozen`
    (non-empty) keep the base model's values (bench/tune_encoder.py --freeze-embeddings)."""
    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    docs = torch.from_numpy(np.ascontiguousarray(doc_vectors, dtype=np.float32))
    model = SentenceTransformer(str(model_path), device="cpu")
    model.max_seq_length = config.max_length
    model.train()
    for name, p in model.named_parameters():
        if frozen and frozen in name:
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(examples) / config.batch_size)
    total = steps_per_epoch * config.epochs
    warm = max(1, int(total * config.warmup))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
    order = list(range(len(examples)))
    rng = random.Random(config.seed)
    losses: list[float] = []
    t0 = time.perf_counter()
    for _epoch in range(config.epochs):
        rng.shuffle(order)
        for start in range(0, len(order), config.batch_size):
            batch = [examples[i] for i in order[start : start + config.batch_size]]
            features = model.tokenize([e.query for e in batch])
            q = torch.nn.functional.normalize(model(features)["sentence_embedding"], dim=-1)
            logits = config.scale * q @ docs.T
            gold_mask = torch.zeros_like(logits, dtype=torch.bool)
            for r, e in enumerate(batch):
                gold_mask[r, list(e.gold_rows)] = True
            loss = gold_loss(logits, gold_mask, config.gold_loss)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            if progress:
                progress(1)
    model.eval()
    if config.mix < 1.0:
        base = SentenceTransformer(str(model_path), device="cpu").state_dict()
        mixed = {k: config.mix * v + (1.0 - config.mix) * base[k]
                 if v.is_floating_point() else v for k, v in model.state_dict().items()}
        model.load_state_dict(mixed)
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out))
    report = {
        "base_model": model_path.name, "examples": len(examples), "steps": len(losses),
        "seconds": round(time.perf_counter() - t0, 1),
        "loss_first_epoch": round(float(np.mean(losses[:steps_per_epoch])), 4),
        "loss_last_epoch": round(float(np.mean(losses[-steps_per_epoch:])), 4),
        "config": config.__dict__,
    }
    (out / "legalrag-tune.json").write_text(json.dumps(report, indent=1))
    return report



def tune_for_index(settings, articles: Sequence[Article], vectors, questions: Path,
                   out: Path, *, config: TuneConfig = TuneConfig(),
                   progress: ProgressFactory | None = None) -> dict:
    """Train the query encoder for an index (articles + their vectors) into out.

    The result is cached under settings.cache_dir keyed by everything it depends on (base
    model, questions, config, the in-force article vectors), so rebuilding the same corpus
    does not train again. Returns the training report.
    """
    import numpy as np

    from legalrag.index.embed import embedding_model_dir, model_fingerprint

    base = embedding_model_dir(settings.embedding_model)
    examples, rows = make_examples(load_questions(questions), articles, "tune")
    if not examples:
        raise LegalRagError(f"{questions}: no question of the tune split resolves to the corpus")
    docs = np.ascontiguousarray(vectors[rows], dtype=np.float32)
    h = hashlib.sha256(questions.read_bytes())
    h.update(json.dumps(config.__dict__, sort_keys=True).encode())
    h.update(model_fingerprint(base).encode())
    h.update(docs.tobytes())
    cached = settings.cache_dir / "query-encoders" / f"{base.name}-{h.hexdigest()[:16]}"
    if not (cached / "legalrag-tune.json").exists():
        tmp = cached.with_name(f"{cached.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        steps = math.ceil(len(examples) / config.batch_size) * config.epochs
        fine_tune_queries(base, examples, docs, tmp, config,
                          progress("tune", steps) if progress else None)
        try:
            os.replace(tmp, cached)  # a half-trained folder never takes the final name
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(cached, out)
    write_prior(questions, articles, out)
    return json.loads((out / "legalrag-tune.json").read_text())
