"""Chinese numerals as used in statute article numbers, both ways.

Article numbers are small positive integers (< 100,000) written either in Chinese
(第一千零三十二条, 第十条, 第一十条) or in Arabic digits (第1032条, full width too).
Parsing is strict: anything that is not a well-formed numeral raises ValueError, so a
citation never resolves to a neighbouring article by accident. Well-formed means the way
statutes write the number (to_chinese), allowing only 一十 for 十 at the start, 两 for 二
before 百/千/万, and 〇 for 零: 二百一 (201 or 210?), 三千二, 一千零零五, 十零 and 万 alone
are refused rather than read as some number.
"""

from __future__ import annotations

import re

DIGITS = {"零": 0, "〇": 0, "○": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4,
          "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}  # fmt: skip
UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}
NUMERAL_CHARS = "".join(DIGITS) + "".join(UNITS) + "0123456789０１２３４５６７８９"
_FULLWIDTH = str.maketrans("０１２３４５６７８９", "0123456789")
_CN_DIGITS = "零一二三四五六七八九"
_LIANG_RE = re.compile("两(?=[百千万])")


def parse_numeral(text: str) -> int:
    """Value of a Chinese or Arabic numeral.

    >>> parse_numeral("一千零三十二"), parse_numeral("十"), parse_numeral("一十")
    (1032, 10, 10)
    >>> parse_numeral("47"), parse_numeral("４７")
    (47, 47)
    """
    s = text.strip().translate(_FULLWIDTH)
    if not s:
        raise ValueError("empty numeral")
    if s.isascii():
        if not s.isdigit():
            raise ValueError(f"not a numeral: {text!r}")
        return _article_number(int(s), text)
    if "万" in s:
        high, _, low = s.partition("万")
        value = (_parse_below_10000(high) if high else 1) * 10000
        if low:
            value += _parse_below_10000(low.removeprefix("零"))
        value = _article_number(value, text)
    else:
        value = _parse_below_10000(s)
    written = _LIANG_RE.sub("二", s.replace("〇", "零").replace("○", "零"))
    if written.startswith("一十"):
        written = written[1:]
    if written != to_chinese(value):
        raise ValueError(f"malformed numeral {text!r} (statutes write {to_chinese(value)})")
    return value


def _article_number(value: int, text: str) -> int:
    # 第0条 and 第100000条 are no article: refusing them here keeps every parsed number
    # writable by to_chinese, which the corpus parser and the answer check rely on.
    if not 1 <= value < 100000:
        raise ValueError(f"not an article number (1 to 99999): {text!r}")
    return value


def _parse_below_10000(s: str) -> int:
    total = 0
    digit: int | None = None
    last_unit = 100000
    zero_pending = False
    for ch in s:
        if ch in DIGITS:
            if digit is not None:
                # Two digits in a row are only legal as "digit-string" numerals (一〇三),
                # which statutes do not use; reject them rather than guess.
                raise ValueError(f"not a numeral: {s!r}")
            digit = DIGITS[ch]
            if digit == 0:
                zero_pending = True
                digit = None
        elif ch in UNITS:
            unit = UNITS[ch]
            if unit >= last_unit or unit == 10000:
                raise ValueError(f"not a numeral: {s!r}")
            if digit is None:
                if unit != 10 or total or zero_pending:
                    # 十 alone may lead (十五); 零十 and 百 without a digit are malformed,
                    # except 一百零十 which nobody writes
                    if not (unit == 10 and (total or zero_pending)):
                        raise ValueError(f"not a numeral: {s!r}")
                digit = 1
            total += digit * unit
            last_unit = unit
            digit = None
            zero_pending = False
        else:
            raise ValueError(f"not a numeral: {s!r}")
    if digit is not None:
        total += digit
    if total == 0:
        raise ValueError(f"not a positive numeral: {s!r}")
    return total


def to_chinese(n: int) -> str:
    """The Chinese numeral statutes write for n (1 <= n < 100,000).

    >>> to_chinese(10), to_chinese(110), to_chinese(1079), to_chinese(219)
    ('十', '一百一十', '一千零七十九', '二百一十九')
    """
    if not 1 <= n < 100000:
        raise ValueError(f"out of range: {n}")
    if n >= 10000:
        high, low = divmod(n, 10000)
        rest = "" if low == 0 else ("零" if low < 1000 else "") + _below_10000(low, lead=False)
        return _below_10000(high, lead=True) + "万" + rest
    return _below_10000(n, lead=True)


def _below_10000(n: int, *, lead: bool) -> str:
    out = []
    zero = False
    for unit, name in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        d, n = divmod(n, unit)
        if d:
            if zero:
                out.append("零")
                zero = False
            if not (unit == 10 and d == 1 and not out and lead):
                out.append(_CN_DIGITS[d])
            out.append(name)
        elif out:
            zero = True
    return "".join(out)


def article_label(number: int, suffix: int = 0) -> str:
    """第二百一十九条之一 for (219, 1)."""
    label = f"第{to_chinese(number)}条"
    return label + (f"之{to_chinese(suffix)}" if suffix else "")
