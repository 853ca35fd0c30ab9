"""The boilerplate rule engine (:mod:`etl.article.cleaning`) and the project's rule file.

Unit tests of each rule kind and option run on small rule files written to ``tmp_path``; the
guard, boilerplate and seed tests run the shipped ``etl/rules/boilerplate.yaml``:

- every line of ``cases/guard_sentences.txt`` (real sentences that look like boilerplate) must
  survive, at the start, in the middle and at the end of a text of real paragraphs;
- every line of ``cases/boilerplate_lines.txt`` must be removed, in the middle and at the end,
  and the paragraphs around it must stay;
- the extracted text of the Kharkiv seed page keeps its 20 paragraphs and loses its widgets.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from etl.article.cleaning import RuleSet, clean, load_rules
from etl.config import CleanSettings
from etl.errors import ConfigError

CASES = Path(__file__).parents[1] / "cases"
GUARDS = CASES / "guard_sentences.txt"
BOILERPLATE = CASES / "boilerplate_lines.txt"
SEED_EXTRACTED = CASES / "clean" / "kharkiv_extracted.txt"
SEED_EXPECTED = CASES / "seeds" / "expected" / "2022__05__14__russia-withdraw-kharkiv.txt"

PARAGRAPHS = [
    "The city council voted on Tuesday to extend the downtown bus lanes by another four "
    "kilometres, the largest expansion since the network opened in 2015.",
    "Transit officials said the new lanes would cut average travel times on the busiest "
    "routes by about six minutes during the morning rush.",
    "Business owners along the corridor had asked for more loading zones, and the final plan "
    "includes twelve new spaces reserved for deliveries before 10 a.m.",
    "Construction is expected to start in May and finish before the end of the year, "
    "according to the city's engineering department.",
    "The project will cost about $18 million, most of it covered by a federal infrastructure "
    "grant announced last spring.",
    "Councillors who voted against the plan said they worried about traffic spilling onto "
    "residential streets that run parallel to the corridor.",
]


def write_rules(tmp_path: Path, body: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text("version: 1\nrules:\n" + textwrap.indent(textwrap.dedent(body), "  "))
    return path


def rules_from(tmp_path: Path, body: str) -> RuleSet:
    return load_rules(write_rules(tmp_path, body))


def kept(text: str, rules: RuleSet, domain: str | None = None) -> list[str]:
    return clean(text, rules, domain=domain).text.split("\n")


def project_rules() -> RuleSet:
    return load_rules(CleanSettings().rules_file)


def case_lines(path: Path) -> list[str]:
    return [
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]


# --- rule kinds -----------------------------------------------------------------------------


def test_line_rule_removes_only_whole_line_matches(tmp_path: Path) -> None:
    rules = rules_from(
        tmp_path,
        """
        - id: ad
          kind: line
          pattern: 'Advertisement'
        """,
    )
    out = clean("Para one.\nAdvertisement\nAdvertisement spending rose.\nPara two.", rules)
    assert out.text.split("\n") == ["Para one.", "Advertisement spending rose.", "Para two."]
    assert [(r.rule, r.text) for r in out.removed] == [("ad", "Advertisement")]


def test_prefix_rule_removes_lines_that_start_with_the_pattern(tmp_path: Path) -> None:
    rules = rules_from(
        tmp_path,
        """
        - id: read-more
          kind: prefix
          pattern: 'Read more:'
        """,
    )
    text = "Para one.\nRead more: Another story\nWe read more: books.\nPara two."
    assert kept(text, rules) == ["Para one.", "We read more: books.", "Para two."]


def test_cut_rule_in_the_tail_removes_the_rest(tmp_path: Path) -> None:
    rules = rules_from(
        tmp_path,
        """
        - id: comments
          kind: cut
          pattern: 'Comments'
          tail: 0.5
        """,
    )
    out = clean("\n".join([*PARAGRAPHS[:4], "Comments", "Great article!", "I disagree."]), rules)
    assert out.text.split("\n") == PARAGRAPHS[:4]
    assert [r.rule for r in out.removed] == ["comments"]
    assert out.removed[0].text == "Comments\nGreat article!\nI disagree."


def test_cut_rule_before_the_tail_removes_only_its_line(tmp_path: Path) -> None:
    rules = rules_from(
        tmp_path,
        """
        - id: comments
          kind: cut
          pattern: 'Comments'
          tail: 0.3
        """,
    )
    text = "\n".join([PARAGRAPHS[0], "Comments", *PARAGRAPHS[1:]])
    assert kept(text, rules) == PARAGRAPHS


def test_caption_rule_moves_the_line_to_captions(tmp_path: Path) -> None:
    rules = rules_from(
        tmp_path,
        """
        - id: credit
          kind: caption
          pattern: '.*\\(Photo: [^()]+\\)'
        """,
    )
    caption = "Firefighters at the scene on Monday (Photo: Jane Doe/AFP)"
    out = clean(f"{PARAGRAPHS[0]}\n{caption}\n{PARAGRAPHS[1]}", rules)
    assert out.text.split("\n") == PARAGRAPHS[:2]
    assert out.captions == (caption,)
    assert out.removed[0].rule == "credit"


def test_lines_equal_to_a_markup_caption_move_to_captions() -> None:
    rules = RuleSet((), "none")  # no rules at all
    caption = "A crane lifts the last span into place."
    out = clean(f"{PARAGRAPHS[0]}\n{caption}\n{PARAGRAPHS[1]}", rules, captions=[f" {caption} "])
    assert out.text.split("\n") == PARAGRAPHS[:2]
    assert out.captions == (caption,)
    assert [r.rule for r in out.removed] == ["markup-caption"]


def test_block_rule_removes_heading_and_headline_lines_after_it(tmp_path: Path) -> None:
    rules = rules_from(
        tmp_path,
        """
        - id: dont-miss
          kind: block
          pattern: "DON'T MISS"
        """,
    )
    text = "\n".join(
        [
            PARAGRAPHS[0],
            "DON'T MISS",
            "Mayor unveils new bike lanes [VIDEO]",
            "Why the bridge is closed again",
            "Is the subway finally on time?",
            PARAGRAPHS[1],
            "Short line without a full stop",
        ]
    )
    out = clean(text, rules)
    # the block stops at the first line that ends as a sentence does
    assert out.text.split("\n") == [PARAGRAPHS[0], PARAGRAPHS[1], "Short line without a full stop"]
    assert out.removed[0].text.split("\n")[0] == "DON'T MISS"
    assert len(out.removed[0].text.split("\n")) == 4


def test_block_rule_limits_and_custom_follow(tmp_path: Path) -> None:
    rules = rules_from(
        tmp_path,
        """
        - id: related
          kind: block
          pattern: 'Related'
          follow: '- .*'
          max_follow: 2
        """,
    )
    text = "Related\n- one\n- two\n- three\nBody line"
    assert kept(text, rules) == ["- three", "Body line"]


def test_block_heading_alone_is_removed(tmp_path: Path) -> None:
    rules = rules_from(
        tmp_path,
        """
        - id: related
          kind: block
          pattern: 'Related'
        """,
    )
    assert kept(f"Related\n{PARAGRAPHS[0]}", rules) == [PARAGRAPHS[0]]


def test_tail_option_limits_a_line_rule_to_the_end(tmp_path: Path) -> None:
    rules = rules_from(
        tmp_path,
        """
        - id: source
          kind: line
          pattern: 'Source: .*'
          tail: 0.25
        """,
    )
    text = "\n".join(["Source: the ministry", *PARAGRAPHS, "Source: News agencies"])
    assert kept(text, rules) == ["Source: the ministry", *PARAGRAPHS]


def test_max_words_guard_keeps_long_lines(tmp_path: Path) -> None:
    rules = rules_from(
        tmp_path,
        """
        - id: share
          kind: prefix
          pattern: 'Share'
          max_words: 5
        """,
    )
    long_line = "Share prices fell sharply after the announcement on Tuesday morning."
    assert kept(f"Share this story\n{long_line}", rules) == [long_line]


def test_default_max_words_is_30(tmp_path: Path) -> None:
    rules = rules_from(
        tmp_path,
        """
        - id: any
          kind: line
          pattern: '.*'
        """,
    )
    thirty = " ".join(["word"] * 30)
    thirty_one = " ".join(["word"] * 31)
    assert kept(f"{thirty}\n{thirty_one}", rules) == [thirty_one]


def test_ignore_case(tmp_path: Path) -> None:
    rules = rules_from(
        tmp_path,
        """
        - id: ad
          kind: line
          pattern: 'advertisement'
          ignore_case: true
        """,
    )
    assert kept("ADVERTISEMENT\nBody.", rules) == ["Body."]


# --- scope ----------------------------------------------------------------------------------


@pytest.fixture
def scoped(tmp_path: Path) -> RuleSet:
    return rules_from(
        tmp_path,
        """
        - id: everywhere
          kind: line
          pattern: 'Global widget'
        - id: site-widget
          kind: line
          pattern: 'Site widget'
          scope: Example.com
        - id: sub-widget
          kind: line
          pattern: 'Sub widget'
          scope: news.example.com
        """,
    )


TEXT = "Global widget\nSite widget\nSub widget\nBody."


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        (None, ["Site widget", "Sub widget", "Body."]),
        ("other.org", ["Site widget", "Sub widget", "Body."]),
        ("example.com", ["Sub widget", "Body."]),
        ("EXAMPLE.com", ["Sub widget", "Body."]),
        ("news.example.com", ["Body."]),
        ("live.news.example.com", ["Body."]),
        ("sports.example.com", ["Sub widget", "Body."]),
        ("notexample.com", ["Site widget", "Sub widget", "Body."]),
    ],
)
def test_scope_by_domain_and_subdomain(
    scoped: RuleSet, domain: str | None, expected: list[str]
) -> None:
    assert kept(TEXT, scoped, domain=domain) == expected


# --- loading --------------------------------------------------------------------------------


def test_later_files_add_rules_and_version_tracks_content(tmp_path: Path) -> None:
    a = write_rules(tmp_path, "- {id: one, kind: line, pattern: 'One'}\n", "a.yaml")
    b = write_rules(tmp_path, "- {id: two, kind: line, pattern: 'Two'}\n", "b.yaml")
    both = load_rules(a, b)
    assert [r.id for r in both.rules] == ["one", "two"]
    assert kept("One\nTwo\nThree", both) == ["Three"]
    assert load_rules(a).version != both.version


def test_duplicate_ids_across_files_are_an_error(tmp_path: Path) -> None:
    a = write_rules(tmp_path, "- {id: one, kind: line, pattern: 'One'}\n", "a.yaml")
    b = write_rules(tmp_path, "- {id: one, kind: line, pattern: 'Uno'}\n", "b.yaml")
    with pytest.raises(ConfigError, match="duplicate rule ids: \\['one'\\]"):
        load_rules(a, b)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("- {id: bad-kind, kind: paragraph, pattern: 'x'}\n", r"\(bad-kind\): `kind` must be"),
        ("- {id: bad-regex, kind: line, pattern: '(unclosed'}\n", r"\(bad-regex\): bad pattern"),
        ("- {id: no-pattern, kind: line}\n", r"\(no-pattern\): `pattern` must be"),
        ("- {id: typo, kind: line, pattern: 'x', max_word: 3}\n", r"\(typo\): unknown key"),
        ("- {id: bad-tail, kind: cut, pattern: 'x', tail: 1.5}\n", r"\(bad-tail\): `tail`"),
        ("- {id: bad-words, kind: line, pattern: 'x', max_words: many}\n", r"\(bad-words\)"),
        ("- {id: not-block, kind: line, pattern: 'x', follow: 'y'}\n", r"\(not-block\): follow"),
        ("- {id: bad-follow, kind: block, pattern: 'x', follow: '['}\n", r"\(bad-follow\)"),
        ("- {id: Bad_Id, kind: line, pattern: 'x'}\n", r"`id` must match"),
        ("- just a string\n", r"rules\[0\]: a rule must be a mapping"),
    ],
)
def test_bad_rule_names_the_file_and_the_rule(tmp_path: Path, body: str, message: str) -> None:
    path = write_rules(tmp_path, body)
    with pytest.raises(ConfigError, match=message) as err:
        load_rules(path)
    assert err.value.subject == str(path)


@pytest.mark.parametrize(
    "content", ["rules: [unclosed\n", "version: 1\n", "- a list\n", "rules: {id: x}\n"]
)
def test_bad_rule_file_shape_is_a_config_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as err:
        load_rules(path)
    assert err.value.subject == str(path)


def test_missing_rule_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match="cannot read rules") as err:
        load_rules(path)
    assert err.value.subject == str(path)


def test_project_rule_file_loads() -> None:
    rules = project_rules()
    assert len(rules.rules) >= 20
    assert {r.kind for r in rules.rules} >= {"line", "prefix", "cut", "caption", "block"}


# --- guard: real sentences that look like boilerplate survive ----------------------------


def test_case_files_exist_and_are_substantial() -> None:
    assert len(case_lines(GUARDS)) >= 40
    assert len(case_lines(BOILERPLATE)) >= 30


@pytest.mark.parametrize("sentence", case_lines(GUARDS))
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_guard_sentence_survives(sentence: str, where: str) -> None:
    body = list(PARAGRAPHS)
    at = {"start": 0, "middle": len(body) // 2, "end": len(body)}[where]
    body.insert(at, sentence)
    out = clean("\n".join(body), project_rules(), domain="canadiannews.example")
    assert out.text.split("\n") == body, [(r.rule, r.text) for r in out.removed]


@pytest.mark.parametrize("line", case_lines(BOILERPLATE))
@pytest.mark.parametrize("where", ["middle", "end"])
def test_boilerplate_line_is_removed(line: str, where: str) -> None:
    at = len(PARAGRAPHS) // 2 if where == "middle" else len(PARAGRAPHS)
    text = "\n".join([*PARAGRAPHS[:at], line, *PARAGRAPHS[at:]])
    out = clean(text, project_rules(), domain="canadiannews.example")
    assert out.text.split("\n") == PARAGRAPHS
    assert any(r.text.split("\n")[0] == line for r in out.removed)


# --- the seed page ----------------------------------------------------------------------------


def test_seed_text_keeps_all_paragraphs_and_drops_the_widgets() -> None:
    text = SEED_EXTRACTED.read_text(encoding="utf-8")
    out = clean(text, project_rules(), domain="canadiannews.example")
    got = out.text.split("\n")
    expected = case_lines(SEED_EXPECTED)
    assert len(expected) == 20
    assert got == expected
    removed = {r.rule: r.text for r in out.removed}
    assert removed["more-in-heading"] == "More in Russo-Ukrainian War"
    assert removed["trending-widget"].startswith("Trending on Canadian News")
    assert removed["comment-form-heading"] == (
        "Leave a Reply\nYour email address will not be published."
    )
    assert len(out.captions) == 2
    assert all(c.endswith("AFP)") for c in out.captions)
    assert not any("(Photo:" in line for line in got)
