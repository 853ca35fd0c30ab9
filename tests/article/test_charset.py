"""etl.article.charset: page bytes → text (HTTP, page declaration, BOM, detection, refusing)."""

from __future__ import annotations

import codecs
import gzip

import pytest

from etl.article.charset import decode
from etl.errors import ExtractError

RUSSIAN = (
    "Правительство объявило о новых мерах поддержки экономики. Министр финансов сообщил, что "
    "бюджет будет пересмотрен в следующем месяце, а налоги для малого бизнеса снизятся."
)
JAPANESE = (
    "東京都は新しい交通規制を発表しました。来月から都心部の道路では速度制限が引き下げられ、"
    "歩行者の安全を確保するための対策が強化されます。"
)
FRENCH = "Le café de la gare a rouvert après les travaux : « déjà complet », dit la gérante."


def page(body: str, head: str = "", prolog: str = "") -> str:
    return (
        f"{prolog}<!DOCTYPE html><html><head>{head}<title>t</title></head>"
        f"<body><p>{body}</p></body></html>"
    )


# --- declarations -----------------------------------------------------------------------------


def test_http_header_charset_wins_over_the_meta_declaration() -> None:
    # KOI8-R bytes also decode (wrongly) as windows-1251: only the header tells them apart.
    html = page(RUSSIAN, head='<meta charset="windows-1251">')
    text, codec = decode(html.encode("koi8-r"), "text/html; charset=KOI8-R")
    assert codec == "koi8-r"
    assert RUSSIAN in text


def test_header_charset_may_be_quoted() -> None:
    html = page(RUSSIAN)
    text, codec = decode(html.encode("cp1251"), 'text/html; charset="windows-1251"')
    assert codec == "cp1251"
    assert RUSSIAN in text


@pytest.mark.parametrize(
    "head",
    [
        '<meta charset="windows-1251">',
        "<meta charset=windows-1251>",
        '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">',
    ],
)
def test_meta_charset_declaration(head: str) -> None:
    text, codec = decode(page(RUSSIAN, head=head).encode("cp1251"))
    assert codec == "cp1251"
    assert RUSSIAN in text


def test_meta_declaration_used_when_the_header_has_no_charset() -> None:
    html = page(RUSSIAN, head='<meta charset="koi8-r">')
    text, codec = decode(html.encode("koi8-r"), "text/html")
    assert codec == "koi8-r"
    assert RUSSIAN in text


def test_xml_encoding_declaration() -> None:
    greek = "Η κυβέρνηση ανακοίνωσε νέα μέτρα για την οικονομία και τις μικρές επιχειρήσεις."
    html = page(greek, prolog='<?xml version="1.0" encoding="ISO-8859-7"?>\n')
    text, codec = decode(html.encode("iso8859-7"))
    assert codec == "iso8859-7"
    assert greek in text


def test_shift_jis_label_aliases() -> None:
    html = page(JAPANESE, head='<meta charset="x-sjis">')
    text, codec = decode(html.encode("shift_jis"))
    assert codec == "shift_jis"
    assert JAPANESE in text


def test_unknown_charset_label_is_ignored() -> None:
    html = page(FRENCH, head='<meta charset="x-no-such-charset">')
    text, codec = decode(html.encode("utf-8"))
    assert codec == "utf-8"
    assert FRENCH in text


# --- BOMs -------------------------------------------------------------------------------------


def test_utf8_bom_wins_over_a_wrong_declaration() -> None:
    html = page(FRENCH, head='<meta charset="iso-8859-1">')
    text, codec = decode(codecs.BOM_UTF8 + html.encode("utf-8"), "text/html; charset=cp1251")
    assert codec == "utf-8-sig"
    assert not text.startswith("\ufeff")
    assert FRENCH in text


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_with_bom_is_text_not_binary(encoding: str) -> None:
    bom = codecs.BOM_UTF16_LE if encoding == "utf-16-le" else codecs.BOM_UTF16_BE
    data = bom + page(RUSSIAN).encode(encoding)
    assert b"\x00" in data  # the NUL bytes must not make it "binary"
    text, codec = decode(data)
    assert codec == "utf-16"
    assert RUSSIAN in text
    assert not text.startswith("\ufeff")


# --- detection --------------------------------------------------------------------------------


def test_cp1251_without_any_declaration_is_detected() -> None:
    html = page(RUSSIAN)
    text, codec = decode(html.encode("cp1251"))
    assert text == html
    assert codec.replace("-", "").replace("_", "") in {"cp1251", "windows1251"}


def test_shift_jis_without_any_declaration_is_detected() -> None:
    html = page(JAPANESE)
    text, codec = decode(html.encode("shift_jis"))
    assert text == html
    assert codec in {"shift_jis", "cp932"}


def test_undeclared_utf8_is_read_as_utf8() -> None:
    text, codec = decode(page(FRENCH).encode("utf-8"))
    assert codec == "utf-8"
    assert FRENCH in text


@pytest.mark.parametrize(
    ("content_type", "head"),
    [
        ("text/html; charset=ISO-8859-1", ""),
        (None, '<meta charset="iso-8859-1">'),
        (None, '<meta charset="windows-1252">'),
        ("text/html; charset=latin1", '<meta charset="latin1">'),
    ],
)
def test_latin1_declared_but_utf8_sent_is_read_as_utf8(content_type: str | None, head: str) -> None:
    text, codec = decode(page(FRENCH, head=head).encode("utf-8"), content_type)
    assert codec == "utf-8"
    assert FRENCH in text
    assert "Ã" not in text  # no mojibake


def test_latin1_declared_and_latin1_sent_stays_latin1() -> None:
    html = page(FRENCH, head='<meta charset="iso-8859-1">')
    text, codec = decode(html.encode("latin-1"))
    assert codec == "iso8859-1"
    assert FRENCH in text


def test_ascii_page_declared_latin1_keeps_the_declaration() -> None:
    text, codec = decode(page("plain ascii news").encode(), "text/html; charset=iso-8859-1")
    assert codec == "iso8859-1"
    assert "plain ascii news" in text


def test_declared_charset_that_cannot_decode_falls_through_to_the_next() -> None:
    # The header says UTF-8, but the bytes are windows-1251 as the page itself declares.
    html = page(RUSSIAN, head='<meta charset="windows-1251">')
    text, codec = decode(html.encode("cp1251"), "text/html; charset=utf-8")
    assert codec == "cp1251"
    assert RUSSIAN in text


def test_declared_charset_that_cannot_decode_falls_through_to_detection() -> None:
    html = page(RUSSIAN, head='<meta charset="utf-8">')
    text, _codec = decode(html.encode("cp1251"))
    assert text == html


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"   \n\t  \r\n"])
def test_empty_page_is_an_error_naming_the_subject(data: bytes) -> None:
    with pytest.raises(ExtractError) as info:
        decode(data, subject="https://news.example.com/a")
    assert info.value.kind == "empty"
    assert info.value.subject == "https://news.example.com/a"
    assert str(info.value).startswith("https://news.example.com/a: ")
    assert not info.value.transient


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n", "PDF"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10", "PNG"),
        (gzip.compress(b"<html><body><p>compressed</p></body></html>", mtime=0), "gzip"),
        (b"<html><body>\x00\x01\x02\x00\x00 not text</body></html>", "NUL"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01", "JPEG"),
    ],
    ids=["pdf", "png", "gzip", "nul", "jpeg"],
)
def test_binary_payloads_are_refused(data: bytes, what: str) -> None:
    with pytest.raises(ExtractError) as info:
        decode(data, "text/html; charset=utf-8", subject="pages/x.html")
    assert info.value.kind == "binary"
    assert info.value.subject == "pages/x.html"
    assert what in str(info.value)


def test_undecodable_bytes_are_refused() -> None:
    data = bytes(range(0x80, 0x100)) * 4  # no NULs, no magic; valid in no charset
    with pytest.raises(ExtractError) as info:
        decode(data, subject="pages/garbage.html")
    assert info.value.kind == "undecodable"
    assert str(info.value).startswith("pages/garbage.html: ")
