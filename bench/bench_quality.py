"""Quality on ../shared/corpus/sh_dev: newsetl (all rules, and global rules only) vs bare
trafilatura, in one run, plus the worst pages with their class.

Targets (issues 2 and 11): F1 >= 0.980 with all rules, precision above bare trafilatura's
favor_precision setting, recall >= 0.980; with the global rules only (`newsetl eval
--global-only`, the figure that predicts an unseen site) F1 >= 0.975 and no page below F1 0.5
whose ground truth has over 100 words. Exits 1 when a target is missed. Same metric as
`newsetl eval`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = Path(os.environ.get("NEWSETL_CORPUS", ROOT.parent / "shared" / "corpus" / "sh_dev"))
if not CORPUS.is_dir() and "NEWSETL_CORPUS" not in os.environ:  # a worktree under /work/wt/
    CORPUS = ROOT.parents[1] / "shared" / "corpus" / "sh_dev"


def main() -> int:
    import trafilatura

    from etl.article import classified, evaluate, load_truth, pages_of, score_corpus
    from etl.config import load_settings

    truth = load_truth(CORPUS)
    pages = pages_of(CORPUS)
    settings = load_settings(env={})
    full = score_corpus(CORPUS, settings, pages=pages)
    glob = score_corpus(CORPUS, settings, pages=pages, global_only=True)
    rows = {
        "newsetl (all rules)": full.score,
        "newsetl --global-only": glob.score,
        "trafilatura default": evaluate({p.id: trafilatura.extract(p.body) or "" for p in pages}, truth)[0],
        "trafilatura favor_precision": evaluate(
            {p.id: trafilatura.extract(p.body, favor_precision=True, include_comments=False) or ""
             for p in pages}, truth)[0],
    }  # fmt: skip
    print(f"corpus: {CORPUS} ({len(pages)} pages)")
    print(f"{'':30s} {'F1':>7} {'precision':>10} {'recall':>8}")
    for name, s in rows.items():
        print(f"{name:30s} {s.f1:7.4f} {s.precision:10.4f} {s.recall:8.4f}")
    for label, result in (("all rules", full), ("global rules only", glob)):
        print(f"\nworst pages ({label}):")
        for p, kind in classified(result, pages, 5):
            print(
                f"  {p.score.id[:12]} F1 {p.f1:.3f} P {p.score.precision or 0:.3f} "
                f"R {p.score.recall or 0:.3f} {p.truth_words:5d} words  {kind:<12} "
                f"{p.method or '-'}{'?' if p.doubtful else ''}  {p.url}"
            )
    low = glob.below(0.5)
    print(f"\n--global-only pages below F1 0.5 with over 100 words of ground truth: {len(low)}")
    prec = rows["trafilatura favor_precision"]
    ours, g = full.score, glob.score
    ok = ours.f1 >= 0.980 and ours.precision > prec.precision and ours.recall >= 0.980
    ok_global = g.f1 >= 0.975 and not low
    print(
        "quality targets (F1 >= 0.980, P > favor_precision P, R >= 0.980):",
        "MET" if ok else "MISSED",
    )
    print(
        "global-only targets (F1 >= 0.975, no page < 0.5 over 100 words):",
        "MET" if ok_global else "MISSED",
    )
    return 0 if ok and ok_global else 1


if __name__ == "__main__":
    sys.exit(main())
