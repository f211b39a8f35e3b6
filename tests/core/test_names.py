"""The name rule: names as Tencent users write them, nothing that breaks a line, table or URL.

Each case is a name and what happens to it: accepted as it is, or refused with the field
(``name``) and a rule a user can read. The zone rule (a zone must be in the configured region)
is checked against the one list of regions.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from controller.core.regions import REGIONS, region_of_zone
from controller.core.spec import MAX_NAME_LENGTH, parse_environment, validate_name, validate_zone
from controller.errors import ValidationFailed

ONLY = "may contain only letters and digits (of any language"


@dataclass(frozen=True)
class Refused:
    rule: str  # part of the message after "name: "


ACCEPTED = {
    "chinese": "测试环境",
    "chinese-with-ascii": "测试环境-gpu_01.v2",
    "japanese-kanji-kana": "テスト環境",
    "japanese-halfwidth-katakana": "ﾃｽﾄ",
    "korean": "테스트 환경",
    "accented-latin-composed": "Café crème",
    "german": "Übersetzung Straße",
    "vietnamese": "Môi trường thử nghiệm",
    "cyrillic": "тестовая среда",
    "greek": "δοκιμή",
    "arabic-letters-and-digits": "بيئة ٣",
    "devanagari-with-vowel-signs": "परीक्षण",
    "thai-with-vowel-and-tone-marks": "ที่นี่",
    "fullwidth-letters-and-digits": "\uff27\uff30\uff35\uff11",  # GPU1, fullwidth
    "letter-with-a-combining-mark-nfc-keeps": "q\u0303",  # no precomposed q-tilde exists
    "ascii-as-before": "web-prod_1.2 batch",
    "digit-first": "2024 训练",
    "one-character": "测",
    "60-cjk-characters": "测" * 60,
    "60-characters-180-utf8-bytes": "环境" * 30,
    "inner-spaces": "a  b",
    "trailing-dot": "v1.",
}

REFUSED = {
    "empty": ("", Refused("must not be empty")),
    "only-spaces": ("   ", Refused("must not be empty")),
    "61-cjk-characters": ("测" * 61, Refused("must be at most 60 characters, got 61")),
    "61-ascii-characters": ("n" * 61, Refused("must be at most 60 characters, got 61")),
    "leading-space": (" 测试", Refused("must not start or end with a space")),
    "trailing-space": ("测试 ", Refused("must not start or end with a space")),
    "leading-tab": ("\t测试", Refused(f"{ONLY}")),
    "newline": ("web\nprod", Refused("U+000A (a control character) is not allowed")),
    "carriage-return": ("web\r", Refused("U+000D (a control character) is not allowed")),
    "nul": ("web\x00", Refused("U+0000 (a control character) is not allowed")),
    "escape-sequence": ("web\x1b[31m", Refused("U+001B (a control character) is not allowed")),
    "delete": ("web\x7f", Refused("U+007F (a control character) is not allowed")),
    "c1-control": ("web\x85", Refused("U+0085 (a control character) is not allowed")),
    "bidi-override": ("abc\u202edcba", Refused("U+202E RIGHT-TO-LEFT OVERRIDE is not allowed")),
    "bidi-isolate": ("abc\u2066x", Refused("U+2066 LEFT-TO-RIGHT ISOLATE is not allowed")),
    "right-to-left-mark": ("\u200fweb", Refused("U+200F RIGHT-TO-LEFT MARK is not allowed")),
    "zero-width-space": ("te\u200bst", Refused("U+200B ZERO WIDTH SPACE is not allowed")),
    "zero-width-joiner": ("te\u200dst", Refused("U+200D ZERO WIDTH JOINER is not allowed")),
    "byte-order-mark": ("\ufeffweb", Refused("U+FEFF ZERO WIDTH NO-BREAK SPACE is not allowed")),
    "soft-hyphen": ("web\u00adprod", Refused("U+00AD SOFT HYPHEN is not allowed")),
    "no-break-space": ("测试\u00a0环境", Refused("U+00A0 NO-BREAK SPACE is not allowed")),
    "ideographic-space": ("测试\u3000环境", Refused("U+3000 IDEOGRAPHIC SPACE is not allowed")),
    "line-separator": ("a\u2028b", Refused("U+2028 LINE SEPARATOR is not allowed")),
    "hangul-filler-invisible-letter": ("\u3164", Refused("U+3164 HANGUL FILLER is not allowed")),
    "variation-selector": ("web\ufe0f", Refused("U+FE0F VARIATION SELECTOR-16 is not allowed")),
    "private-use": ("web\ue000", Refused("U+E000 (a private-use character) is not allowed")),
    "unassigned": ("web\U000e0fff", Refused("U+E0FFF (an unassigned code point)")),
    "lone-surrogate": ("web\ud800", Refused("U+D800 (a surrogate) is not allowed")),
    "slash": ("web/prod", Refused(f"{ONLY}")),
    "slash-named": ("web/prod", Refused("'/' (U+002F SOLIDUS) is not allowed")),
    "fullwidth-slash": (
        "web\uff0fprod",
        Refused("'\uff0f' (U+FF0F FULLWIDTH SOLIDUS) is not allowed"),
    ),
    "backslash": ("web\\prod", Refused("'\\\\' (U+005C REVERSE SOLIDUS) is not allowed")),
    "question-mark": ("web?", Refused("'?' (U+003F QUESTION MARK) is not allowed")),
    "hash": ("web#1", Refused("'#' (U+0023 NUMBER SIGN) is not allowed")),
    "percent": ("web%20", Refused("'%' (U+0025 PERCENT SIGN) is not allowed")),
    "apostrophe": ("it's", Refused('"\'" (U+0027 APOSTROPHE) is not allowed')),
    "double-quote": ('a"b', Refused("'\"' (U+0022 QUOTATION MARK) is not allowed")),
    "backtick": ("a`b", Refused("'`' (U+0060 GRAVE ACCENT) is not allowed")),
    "pipe-breaks-markdown-tables": ("a|b", Refused("'|' (U+007C VERTICAL LINE) is not allowed")),
    "chinese-comma": (
        "测试\uff0c环境",
        Refused("'\uff0c' (U+FF0C FULLWIDTH COMMA) is not allowed"),
    ),
    "emoji": ("测试🚀", Refused("'🚀' (U+1F680 ROCKET) is not allowed")),
    "emoji-zwj-sequence": ("👩\u200d💻", Refused("U+1F469 WOMAN")),
    "symbol": ("a+b", Refused("'+' (U+002B PLUS SIGN) is not allowed")),
    "leading-hyphen-looks-like-an-option": ("-web", Refused("must start with a letter or digit")),
    "leading-dot": (".hidden", Refused("must start with a letter or digit")),
    "leading-underscore": ("_web", Refused("must start with a letter or digit")),
    "leading-combining-mark": ("\u0301a", Refused("a combining accent must follow a letter")),
    "combining-mark-after-space": ("a \u0301", Refused("a combining accent must follow a letter")),
    "zalgo": ("a" + "\u0300\u0301\u0302\u0303\u0304", Refused("at most 4 combining accents")),
    "decomposed-accent-not-nfc": ("Cafe\u0301", Refused("must be in composed form (Unicode NFC)")),
    "decomposed-hangul-not-nfc": ("\u1112\u1161\u11ab", Refused("Unicode NFC")),
}


@pytest.mark.parametrize("name", ACCEPTED.values(), ids=list(ACCEPTED))
def test_accepted_names_are_kept_exactly(name: str) -> None:
    assert validate_name(name) == name
    assert len(name) <= MAX_NAME_LENGTH


@pytest.mark.parametrize(("name", "outcome"), REFUSED.values(), ids=list(REFUSED))
def test_refused_names_say_the_field_and_the_rule(name: str, outcome: Refused) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_name(name)
    assert caught.value.field == "name"
    assert outcome.rule in caught.value.rule, caught.value.rule
    assert str(caught.value).startswith("name: ")


@pytest.mark.parametrize(
    "name",
    [n for n, _ in REFUSED.values() if n.strip()],
    ids=[k for k, (n, _) in REFUSED.items() if n.strip()],
)
def test_a_refusal_is_one_printable_line_without_the_invisible_character(name: str) -> None:
    """The message lands in a log line, a table cell and status_reason: it must not break them."""
    with pytest.raises(ValidationFailed) as caught:
        validate_name(name)
    message = str(caught.value)
    assert message.isprintable(), repr(message)
    invisible = [ch for ch in name if not ch.isprintable() or ch in "\u00a0\u3000\u3164\ufe0f"]
    assert not any(ch in message for ch in invisible), repr(message)


def test_length_is_counted_in_characters_not_bytes() -> None:
    sixty = "测" * 60
    assert len(sixty.encode()) == 180  # 3 bytes each in UTF-8
    assert validate_name(sixty) == sixty
    with pytest.raises(ValidationFailed, match="at most 60 characters, got 61"):
        validate_name(sixty + "测")


def test_a_parsed_row_keeps_the_name_as_stored() -> None:
    row = {
        "id": "env-00000000",
        "name": "测试环境",
        "zone": "ap-guangzhou-3",
        "instance_type": "S2.MEDIUM4",
        "image_id": "img-pmqg1cw7",
        "max_price": "0.6",
        "desired_count": 1,
    }
    assert parse_environment(row, "ap-guangzhou").name == "测试环境"


# ----- zones and the region -------------------------------------------------------------


ZONES = {
    # zone, configured region, None if accepted else the rule
    "zone-in-region": ("ap-guangzhou-3", "ap-guangzhou", None),
    "zone-of-a-finance-region": ("ap-shanghai-fsi-1", "ap-shanghai-fsi", None),
    "finance-zone-is-not-in-the-plain-region": (
        "ap-shanghai-fsi-1",
        "ap-shanghai",
        "'ap-shanghai-fsi-1' is not in the region 'ap-shanghai'",
    ),
    "plain-zone-is-not-in-the-finance-region": (
        "ap-shanghai-2",
        "ap-shanghai-fsi",
        "'ap-shanghai-2' is not in the region 'ap-shanghai-fsi'",
    ),
    "zone-of-another-region": (
        "ap-beijing-3",
        "ap-guangzhou",
        "'ap-beijing-3' is not in the region 'ap-guangzhou'",
    ),
    "zone-of-an-extra-region": ("ap-newcity-1", "ap-newcity", None),
    "region-given-as-zone": ("ap-guangzhou", "ap-guangzhou", "'ap-guangzhou' is malformed"),
}


@pytest.mark.parametrize(("zone", "region", "rule"), ZONES.values(), ids=list(ZONES))
def test_zone_must_be_in_the_configured_region(zone: str, region: str, rule: str | None) -> None:
    if rule is None:
        assert validate_zone(zone, region) == zone
        return
    with pytest.raises(ValidationFailed) as caught:
        validate_zone(zone, region)
    assert caught.value.field == "zone"
    assert rule in caught.value.rule


@pytest.mark.parametrize("region", REGIONS, ids=[r.name for r in REGIONS])
def test_every_listed_zone_is_valid_in_its_region(region: object) -> None:
    from controller.core.regions import Region

    assert isinstance(region, Region)
    assert region.zones
    for zone in region.zones:
        assert region_of_zone(zone) == region.name
        assert validate_zone(zone, region.name) == zone
