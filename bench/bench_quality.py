"""Quality on ../shared/corpus/sh_dev: newsetl vs bare trafilatura, in one run.

Targets (issue 2): F1 >= 0.980, precision above bare trafilatura's favor_precision setting,
recall >= 0.980. Exits 1 when a target is missed. Same metric as `newsetl eval`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = Path(os.environ.get("NEWSETL_CORPUS", ROOT.parent / "shared" / "corpus" / "sh_dev"))


def main() -> int:
    import trafilatura

    from etl.config import load_settings
    from etl.evaluate import corpus_pages, evaluate, load_truth
    from etl.pipeline import Failure, process_pages
    from etl.records import Page

    truth = load_truth(CORPUS)
    urls = {
        k: v.get("url") for k, v in json.loads((CORPUS / "ground-truth.json").read_text()).items()
    }
    pages = [Page(id=pid, body=raw, url=urls.get(pid)) for pid, raw in corpus_pages(CORPUS)]
    settings = load_settings(env={})
    ours = {
        r.id if isinstance(r, Failure) else r.page.id: ""
        if isinstance(r, Failure)
        else r.cleaned.text
        for r in process_pages(pages, settings)
    }
    rows = {
        "newsetl": evaluate(ours, truth)[0],
        "trafilatura default": evaluate({p.id: trafilatura.extract(p.body) or "" for p in pages}, truth)[0],
        "trafilatura favor_precision": evaluate(
            {p.id: trafilatura.extract(p.body, favor_precision=True, include_comments=False) or ""
             for p in pages}, truth)[0],
    }  # fmt: skip
    print(f"corpus: {CORPUS} ({len(pages)} pages)")
    print(f"{'':30s} {'F1':>7} {'precision':>10} {'recall':>8}")
    for name, s in rows.items():
        print(f"{name:30s} {s.f1:7.4f} {s.precision:10.4f} {s.recall:8.4f}")
    ours_s, prec = rows["newsetl"], rows["trafilatura favor_precision"]
    ok = ours_s.f1 >= 0.980 and ours_s.precision > prec.precision and ours_s.recall >= 0.980
    print(
        "quality targets (F1 >= 0.980, P > favor_precision P, R >= 0.980):",
        "MET" if ok else "MISSED",
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
