"""Quality probe on the dev corpus: extract-only and extract+clean scores, wrongly removed
pieces, and the speed of the extract path against bare ``trafilatura.extract(bytes)``.

    .venv/bin/python bench/quality_probe.py [--no-timing] [--pages] [--rules]

A removed piece counts as "wrongly removed" when it is article text: a piece of four or more
words whose first eight words occur (as whole words) in the page's ground truth, or a shorter
piece equal to a whole line of the ground truth.
"""

import json
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import trafilatura

from etl.article import clean, corpus_pages, evaluate, extract, load_rules, load_truth
from etl.config import CleanSettings, ExtractSettings
from etl.records import Page
from etl.urls import domain as url_domain

CORPUS = Path("/work/shared/corpus/sh_dev")
TOKEN = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return TOKEN.findall(text)


def main(argv: list[str]) -> None:
    truth = load_truth(CORPUS)
    pages = list(corpus_pages(CORPUS))
    meta = json.loads((CORPUS / "ground-truth.json").read_text())
    urls = {k: v["url"] for k, v in meta.items()}
    settings = ExtractSettings()
    rules = load_rules(CleanSettings().rules_file)

    extracted = {p: extract(Page(id=p, body=b, url=urls.get(p)), settings) for p, b in pages}
    score, _ = evaluate({k: v.text for k, v in extracted.items()}, truth)
    print(f"extract F1={score.f1:.4f} P={score.precision:.4f} R={score.recall:.4f}")
    cleaned = {
        k: clean(v.text, rules, domain=url_domain(urls.get(k)), captions=v.captions)
        for k, v in extracted.items()
    }
    score, per_page = evaluate({k: v.text for k, v in cleaned.items()}, truth)
    print(f"clean   F1={score.f1:.4f} P={score.precision:.4f} R={score.recall:.4f}")

    fired: dict[str, set[str]] = defaultdict(set)
    wrong = 0
    for k, v in cleaned.items():
        body = " " + " ".join(words(truth[k])) + " "
        lines = {" ".join(words(line)) for line in truth[k].split("\n")}
        for r in v.removed:
            fired[r.rule].add(k)
            w = words(r.text)
            if not w:
                continue
            if (len(w) >= 4 and f" {' '.join(w[:8])} " in body) or (
                len(w) < 4 and " ".join(w) in lines
            ):
                wrong += 1
                print("  WRONGLY REMOVED", k[:8], r.rule, r.text[:120])
    print(f"wrongly removed pieces: {wrong}")
    if "--rules" in argv:
        for rule, ids in sorted(fired.items()):
            print(f"  {rule}: {len(ids)} page(s)")
    if "--pages" in argv:
        for p in per_page:
            print(f"  {p.id[:10]} P={p.precision or 0:.3f} R={p.recall or 0:.3f} {urls[p.id][:70]}")

    if "--no-timing" not in argv:
        # best of five rounds each, interleaved, so both see the same machine load
        bare, ours = [], []
        for _ in range(5):
            t = time.perf_counter()
            for _, b in pages:
                trafilatura.extract(b)
            bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            for pid, b in pages:
                extract(Page(id=pid, body=b, url=urls.get(pid)), settings)
            ours.append(time.perf_counter() - t)
        print(
            f"speed: bare trafilatura.extract {min(bare):.3f}s, extract() {min(ours):.3f}s "
            f"for {len(pages)} pages; ratio (bare/ours) {min(bare) / min(ours):.3f}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
