"""Boilerplate cleaning: a rule engine over the extracted text, rules in ``rules/*.yaml``.

Each rule has an ``id``, a ``scope`` (``global`` or a domain, which also covers its subdomains)
and a ``kind``:

- ``line``    the whole line matches ``pattern``: the line is removed;
- ``prefix``  the line starts with ``pattern``: the line is removed;
- ``cut``     the whole line matches ``pattern`` and it stands in the last part of the text
              (``tail`` fraction, default 0.5): it and everything after it are removed (a match
              before the tail removes that line only);
- ``caption`` the whole line matches ``pattern``: it moves to ``captions``;
- ``block``   the whole line matches ``pattern`` (a widget heading such as "DON'T MISS"): it is
              removed with the lines right after it that match ``follow`` (default: a short,
              headline-like line, i.e. not ending as a sentence does), at most ``max_follow``
              of them (default 8), each of at most ``follow_words`` words (default 20).

Rules test only lines of at most ``max_words`` words (default 30, 60 for captions): a long line
is prose. Any kind may set ``tail`` to act only in that last fraction of the text (``cut`` always
has one). Lines equal to a figure caption found in the page's markup move to ``captions`` too
(rule ``markup-caption``). Output: the clean text, each removed piece with the rule that removed
it, and the captions.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml

from etl.errors import ConfigError
from etl.records import Cleaned, Removed

log = logging.getLogger("etl.article.cleaning")

Kind = Literal["line", "prefix", "cut", "caption", "block"]
_KINDS = ("line", "prefix", "cut", "caption", "block")
_KEYS = frozenset(
    {
        "id",
        "kind",
        "pattern",
        "scope",
        "max_words",
        "tail",
        "ignore_case",
        "follow",
        "max_follow",
        "follow_words",
        "note",
    }
)
_WORD = re.compile(r"\w+")
# A headline-like line: it does not end the way a sentence does (full stop, comma, colon...,
# optionally followed by closing quotes or brackets).
_HEADLINE = re.compile(r"(?!.*[.,;:…][\"”'’)\]]*$).+")


@dataclass(frozen=True)
class Rule:
    id: str
    kind: Kind
    pattern: re.Pattern[str]
    scope: str = "global"
    max_words: int = 30
    tail: float | None = None
    follow: re.Pattern[str] = _HEADLINE
    max_follow: int = 8
    follow_words: int = 20

    def hits(self, line: str) -> bool:
        if self.kind == "prefix":
            return self.pattern.match(line) is not None
        return self.pattern.fullmatch(line) is not None

    def in_tail(self, index: int, total: int) -> bool:
        return self.tail is None or index >= total * (1 - self.tail)

    def follows(self, line: str) -> bool:
        words = len(_WORD.findall(line))
        return 0 < words <= self.follow_words and self.follow.fullmatch(line) is not None


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    version: str

    @cache  # noqa: B019 - rule sets are few and live for the process
    def for_domain(self, domain: str | None) -> tuple[Rule, ...]:
        parts = (domain or "").lower().split(".")
        scopes = {"global"} | {".".join(parts[i:]) for i in range(len(parts) - 1)}
        return tuple(r for r in self.rules if r.scope in scopes)


def _compile(value: Any, what: str, where: str, flags: int) -> re.Pattern[str]:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where}: `{what}` must be a non-empty string")
    try:
        return re.compile(value, flags)
    except re.error as exc:
        raise ValueError(f"{where}: bad {what}: {exc}") from None


def _number(entry: dict[str, Any], key: str, default: float, where: str, *, whole: bool) -> float:
    value = entry.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (whole and not isinstance(value, int))
    ):
        kind = "a whole number" if whole else "a number"
        raise ValueError(f"{where}: `{key}` must be {kind}, got {value!r}")
    return value


def _rule(entry: Any, where: str) -> Rule:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: a rule must be a mapping")
    rid, kind = entry.get("id"), entry.get("kind")
    if not isinstance(rid, str) or not re.fullmatch(r"[a-z0-9][a-z0-9.-]*", rid):
        raise ValueError(f"{where}: `id` must match [a-z0-9.-]+, got {rid!r}")
    where = f"{where} ({rid})"
    if unknown := sorted(set(entry) - _KEYS):
        raise ValueError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}")
    if kind not in _KINDS:
        raise ValueError(f"{where}: `kind` must be one of {', '.join(_KINDS)}, got {kind!r}")
    flags = re.IGNORECASE if entry.get("ignore_case") else 0
    pattern = _compile(entry.get("pattern"), "pattern", where, flags)
    scope = entry.get("scope", "global")
    if not isinstance(scope, str) or not scope.strip():
        raise ValueError(f"{where}: `scope` must be `global` or a domain, got {scope!r}")
    max_words = int(_number(entry, "max_words", 60 if kind == "caption" else 30, where, whole=True))
    if max_words < 1:
        raise ValueError(f"{where}: `max_words` must be at least 1, got {max_words}")
    tail: float | None = None
    if kind == "cut" or "tail" in entry:
        tail = float(_number(entry, "tail", 0.5, where, whole=False))
        if not 0 < tail <= 1:
            raise ValueError(f"{where}: `tail` must be in (0, 1], got {tail}")
    block_keys = {"follow", "max_follow", "follow_words"} & set(entry)
    if block_keys and kind != "block":
        raise ValueError(f"{where}: {', '.join(sorted(block_keys))} only apply to `block` rules")
    follow = _compile(entry["follow"], "follow", where, flags) if "follow" in entry else _HEADLINE
    return Rule(
        id=rid,
        kind=kind,
        pattern=pattern,
        scope=scope.strip().lower(),
        max_words=max_words,
        tail=tail,
        follow=follow,
        max_follow=int(_number(entry, "max_follow", 8, where, whole=True)),
        follow_words=int(_number(entry, "follow_words", 20, where, whole=True)),
    )


@cache
def load_rules(*paths: Path) -> RuleSet:
    """Read rule files (later files add to earlier ones); errors name the file and the rule."""
    rules: list[Rule] = []
    digest = hashlib.sha256()
    for path in paths:
        try:
            raw = path.read_bytes()
            data = yaml.safe_load(raw)
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(str(path), f"cannot read rules: {exc}") from None
        digest.update(raw)
        entries = data.get("rules") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise ConfigError(str(path), "expected a mapping with a `rules:` list")
        try:
            rules.extend(_rule(e, f"rules[{i}]") for i, e in enumerate(entries))
        except ValueError as exc:
            raise ConfigError(str(path), str(exc)) from None
    ids = [r.id for r in rules]
    if dup := {i for i in ids if ids.count(i) > 1}:
        raise ConfigError(", ".join(map(str, paths)), f"duplicate rule ids: {sorted(dup)}")
    return RuleSet(tuple(rules), digest.hexdigest()[:12])


def _norm(s: str) -> str:
    return " ".join(_WORD.findall(s.lower()))


def _match(rules: tuple[Rule, ...], lines: list[str], index: int) -> Rule | None:
    line, total = lines[index], len(lines)
    n_words = len(_WORD.findall(line))
    for rule in rules:
        if n_words > rule.max_words:
            continue
        # a cut rule outside its tail still removes its own line
        if rule.kind != "cut" and not rule.in_tail(index, total):
            continue
        if rule.hits(line):
            return rule
    return None


def clean(
    text: str, ruleset: RuleSet, *, domain: str | None = None, captions: Iterable[str] = ()
) -> Cleaned:
    """Apply the rules for ``domain`` to ``text``."""
    rules = ruleset.for_domain(domain)
    markup = [c.strip() for c in captions if c.strip()]
    known_captions = {_norm(c) for c in markup}
    lines = [line.strip() for line in text.split("\n")]
    lines = [line for line in lines if line]
    kept: list[str] = []
    removed: list[Removed] = []
    moved: list[str] = list(dict.fromkeys(markup))
    total = len(lines)
    index = 0
    while index < total:
        line = lines[index]
        if known_captions and _norm(line) in known_captions:
            removed.append(Removed("markup-caption", line))
            index += 1
            continue
        hit = _match(rules, lines, index)
        if hit is None:
            kept.append(line)
            index += 1
            continue
        if hit.kind == "cut" and hit.in_tail(index, total):
            removed.append(Removed(hit.id, "\n".join(lines[index:])))
            break
        if hit.kind == "block":
            end = index + 1
            while end < total and end - index <= hit.max_follow and hit.follows(lines[end]):
                end += 1
            removed.append(Removed(hit.id, "\n".join(lines[index:end])))
            index = end
            continue
        removed.append(Removed(hit.id, line))
        if hit.kind == "caption" and line not in moved:
            moved.append(line)
        index += 1
    return Cleaned(
        text="\n".join(kept),
        removed=tuple(removed),
        captions=tuple(moved),
        rules_version=ruleset.version,
    )
