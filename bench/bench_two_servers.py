"""Two `legalrag serve` processes on one index directory and one history database, and an
`index update` (a new statute file) while both serve (docs/deployment.md).

Measures /v1/retrieve latency on both before, during and after the update, and when each
process serves the new law.

    python bench/bench_two_servers.py DIR   # DIR holds copies of corpus/ and indexes/
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

STATUTE = ("# 星河市古树名木保护条例\n\n第一条 为了保护古树名木，制定本条例。\n\n"
           "第二条 树龄在一百年以上的树木为古树，由园林绿化主管部门建立档案。\n\n"
           "第三条 禁止在古树名木保护范围内挖坑取土、倾倒有害废渣。\n")
NEW_LAW = "星河市古树名木保护条例"
PORTS = (7871, 7872)


def post(port: int, body: dict) -> tuple[float, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/retrieve",
                                 json.dumps(body).encode(), {"Content-Type": "application/json"})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:  # noqa: S310 - 127.0.0.1
        data = json.loads(r.read())
    return (time.perf_counter() - t) * 1000, data


def main(root: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "LEGALRAG_CORPUS_DIR": str(root / "corpus"),
           "LEGALRAG_INDEX_DIR": str(root / "indexes"),
           "LEGALRAG_DATA_DIR": str(root / "userdata"), "LEGALRAG_TUNE_QUESTIONS": ""}
    procs = [subprocess.Popen([sys.executable, "-m", "legalrag", "serve", "--port", str(p)],
                              cwd=root, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for p in PORTS]
    t0 = time.time()
    for p in PORTS:
        while True:
            try:
                post(p, {"query": "试用期", "k": 1})
                break
            except OSError:
                time.sleep(0.5)
    print(f"both serving after {time.time() - t0:.1f} s", flush=True)
    lat: dict[str, list[float]] = {"before": [], "during": [], "after": []}
    state = {"phase": "before", "stop": False}
    seen: dict[int, float] = {}

    def load(port: int) -> None:
        i = 0
        while not state["stop"]:
            query = f"{NEW_LAW}第二条" if i % 2 else "公司拖欠工资怎么办"
            ms, d = post(port, {"query": query, "k": 5})
            lat[state["phase"]].append(ms)
            if i % 2 and d["hits"] and d["hits"][0]["law"] == NEW_LAW:
                seen.setdefault(port, time.time())
            i += 1

    threads = [threading.Thread(target=load, args=(p,)) for p in PORTS]
    for t in threads:
        t.start()
    time.sleep(20)
    state["phase"] = "during"
    (root / "corpus" / "用户上传").mkdir(exist_ok=True)
    (root / "corpus" / "用户上传" / f"{NEW_LAW}.md").write_text(STATUTE, encoding="utf-8")
    tu = time.time()
    r = subprocess.run([sys.executable, "-m", "legalrag", "index", "update"], cwd=root,
                       env=env, capture_output=True, text=True)
    update_s = time.time() - tu
    state["phase"] = "after"
    time.sleep(20)
    state["stop"] = True
    for t in threads:
        t.join()
    for p in procs:
        p.terminate()
    print(f"index update exit {r.returncode} in {update_s:.1f} s")
    for phase, v in lat.items():
        v = sorted(v)
        if v:
            print(f"{phase}: n={len(v)} p50={statistics.median(v):.0f} ms "
                  f"p95={v[int(len(v) * 0.95) - 1]:.0f} ms max={v[-1]:.0f} ms")
    for p in PORTS:
        print(f"port {p}: new law served {seen[p] - tu:.1f} s after the update started"
              if p in seen else f"port {p}: new law not seen")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]).resolve())
