"""Numbers and dates as each locale writes them: ru «1 234 567,89» and «20.11.2026», en «1,234,567.89» and
«20 Nov 2026». Money is Decimal, printed to the kopeck, never through a float."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

NBSP = "\u00a0"
_MONTHS = {
    "ru": ["янв", "фев", "мар", "апр", "май", "июн", "июл", "авг", "сен", "окт", "ноя", "дек"],
    "en": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"],
}
KOPECK = Decimal("0.01")


def money(value: Decimal | None, lang: str) -> str:
    if value is None:
        return "—"
    q = Decimal(value).quantize(KOPECK, ROUND_HALF_UP)
    text = f"{abs(q):,.2f}"  # Decimal formatting is exact
    if lang == "ru":
        text = text.replace(",", NBSP).replace(".", ",")
    return ("-" if q < 0 else "") + text


def money_cur(value: Decimal | None, currency: str, lang: str) -> str:
    return f"{money(value, lang)}{NBSP}{currency}"


def integer(value: int | None, lang: str) -> str:
    if value is None:
        return "—"
    text = f"{value:,d}"
    return text.replace(",", NBSP) if lang == "ru" else text


def percent(value: Decimal | None, lang: str) -> str:
    if value is None:
        return "—"
    text = format(Decimal(value).normalize(), "f")
    if lang == "ru":
        return text.replace(".", ",") + NBSP + "%"
    return text + "%"


def share(part: int, whole: int, lang: str) -> str:
    if not whole:
        return "—"
    pct = (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("1"), ROUND_HALF_UP)
    return percent(pct, lang)


def day(value: date | None, lang: str) -> str:
    if value is None:
        return "—"
    if lang == "ru":
        return value.strftime("%d.%m.%Y")
    return f"{value.day} {_MONTHS['en'][value.month - 1]} {value.year}"


def month(value: date, lang: str) -> str:
    return f"{_MONTHS[lang][value.month - 1]} {value.year}"


def quarter(year: int, q: int, lang: str) -> str:
    return f"{q} кв. {year}" if lang == "ru" else f"Q{q} {year}"


def timestamp(value: datetime | None, lang: str) -> str:
    if value is None:
        return "—"
    utc = value.astimezone(UTC) if value.tzinfo else value
    return f"{day(utc.date(), lang)} {utc:%H:%M} UTC"
