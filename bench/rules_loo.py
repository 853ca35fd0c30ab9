"""Leave-one-out of the shipped global rules on the --global-only score of the dev corpus.

For every global prune rule (etl/article/rules/prune.yaml) and every global boilerplate rule
(etl/article/rules/boilerplate.yaml), the corpus is scored with that one rule taken out and the domain
rules off; the change in F1 (and the pages that change) is printed. A rule whose removal does not
lower F1 does not earn its place on pages it was not written for.

    .venv/bin/python bench/rules_loo.py [--prune] [--boilerplate]
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = Path(os.environ.get("NEWSETL_CORPUS", ROOT.parent / "shared" / "corpus" / "sh_dev"))


def main(argv: list[str]) -> int:
    from etl.article import pages_of, score_corpus
    from etl.config import load_settings

    both = not ({"--prune", "--boilerplate"} & set(argv))
    settings = load_settings(env={})
    pages = pages_of(CORPUS)
    base = score_corpus(CORPUS, settings, pages=pages, global_only=True)
    base_f1 = {p.score.id: p.f1 for p in base.pages}
    print(
        f"--global-only F1 {base.score.f1:.4f} (P {base.score.precision:.4f}, R {base.score.recall:.4f})"
    )
    tmp = Path(tempfile.mkdtemp(prefix="newsetl-loo-"))

    def report(kind: str, rid: str, result) -> None:  # type: ignore[no-untyped-def]
        delta = base.score.f1 - result.score.f1
        changed = [
            f"{p.score.id[:8]}{p.f1 - base_f1[p.score.id]:+.3f}"
            for p in result.pages
            if abs(p.f1 - base_f1[p.score.id]) > 1e-9
        ]
        verdict = "earns" if delta > 0 else "DROP?"
        print(
            f"{kind:<11} {rid:<28} without: F1 {result.score.f1:.4f}  gain {delta:+.5f}  {verdict}  {' '.join(changed[:8])}"
        )

    if both or "--prune" in argv:
        data = yaml.safe_load(settings.extract.prune_file.read_text(encoding="utf-8"))
        for i, rule in enumerate(data.get("global") or []):
            trimmed = {**data, "global": [r for j, r in enumerate(data["global"]) if j != i]}
            path = tmp / f"prune-{i}.yaml"
            path.write_text(yaml.safe_dump(trimmed, sort_keys=False), encoding="utf-8")
            s = replace(settings, extract=replace(settings.extract, prune_file=path))
            report("prune", rule["id"], score_corpus(CORPUS, s, pages=pages, global_only=True))
    if both or "--boilerplate" in argv:
        data = yaml.safe_load(settings.clean.rules_file.read_text(encoding="utf-8"))
        for i, rule in enumerate(data["rules"]):
            if rule.get("scope", "global") != "global":
                continue
            trimmed = {**data, "rules": [r for j, r in enumerate(data["rules"]) if j != i]}
            path = tmp / f"boilerplate-{i}.yaml"
            path.write_text(yaml.safe_dump(trimmed, sort_keys=False), encoding="utf-8")
            s = replace(settings, clean=replace(settings.clean, rules_file=path))
            report(
                "boilerplate", rule["id"], score_corpus(CORPUS, s, pages=pages, global_only=True)
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
