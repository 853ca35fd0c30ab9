r"""The article core: one page's bytes → extracted, cleaned, normalized rows; dedupe; evaluation.

No lake and no network: :func:`process_page` / :func:`process_pages` turn pages into
:class:`~etl.records.Article`\ s (or Failures), :func:`normalize` into Arrow batches of the article
schema, :func:`dedupe` removes near-duplicates. Rules live in ``etl/article/rules/*.yaml``.
"""

from typing import TYPE_CHECKING

from etl._lazy import surface

if TYPE_CHECKING:
    from etl.article.cleaning import clean as clean
    from etl.article.cleaning import load_rules as load_rules
    from etl.article.deduplication import DedupeStats as DedupeStats
    from etl.article.deduplication import compact_key as compact_key
    from etl.article.deduplication import dedupe as dedupe
    from etl.article.evalcorpus import classified as classified
    from etl.article.evalcorpus import pages_of as pages_of
    from etl.article.evalcorpus import score_corpus as score_corpus
    from etl.article.evaluation import corpus_pages as corpus_pages
    from etl.article.evaluation import evaluate as evaluate
    from etl.article.evaluation import load_truth as load_truth
    from etl.article.extraction import extract as extract
    from etl.article.normalization import article_row as article_row
    from etl.article.normalization import hamming as hamming
    from etl.article.normalization import normalize as normalize
    from etl.article.process import Item as Item
    from etl.article.process import LocalPage as LocalPage
    from etl.article.process import find_pages as find_pages
    from etl.article.process import process_page as process_page
    from etl.article.process import process_pages as process_pages
    from etl.article.process import rules_for as rules_for
    from etl.article.process import warm_up as warm_up

__all__, __getattr__, __dir__ = surface(
    __name__,
    {
        "cleaning": ("clean", "load_rules"),
        "deduplication": ("DedupeStats", "compact_key", "dedupe"),
        "evalcorpus": ("classified", "pages_of", "score_corpus"),
        "evaluation": ("corpus_pages", "evaluate", "load_truth"),
        "extraction": ("extract",),
        "normalization": ("article_row", "hamming", "normalize"),
        "process": (
            "Item",
            "LocalPage",
            "find_pages",
            "process_page",
            "process_pages",
            "rules_for",
            "warm_up",
        ),
    },
)
