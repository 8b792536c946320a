"""Every word the report shows, in Russian and English. Keys are stable; tests and CSV headers use them."""

from __future__ import annotations

import csv

from ..registry import ALL_SOURCES
from ..settings import MODELS_DIR

LANGS = ("ru", "en")

TEXT: dict[str, dict[str, str]] = {
    "title": {"ru": "Счета и расчёты: отчёт для финансов", "en": "Invoices and receivables: finance report"},
    "generated": {"ru": "Сформирован", "en": "Generated"},
    "as_of": {"ru": "На дату", "en": "As of"},
    "reporting_currency": {"ru": "Валюта отчёта", "en": "Reporting currency"},
    "warehouse": {"ru": "Хранилище", "en": "Warehouse"},
    "download_csv": {"ru": "CSV", "en": "CSV"},
    "no_data": {"ru": "Нет данных", "en": "No data"},
    "no_invoices": {"ru": "В хранилище нет счетов: загрузите CRM (`crm-invoices run`).",
                    "en": "The warehouse holds no invoices: load a CRM (`crm-invoices run`)."},
    "total": {"ru": "Итого", "en": "Total"},
    "all_crms": {"ru": "все CRM", "en": "all CRMs"},
    # headline
    "s_headline": {"ru": "1. Главное", "en": "1. Headline"},
    "invoiced": {"ru": "Выставлено", "en": "Invoiced"},
    "collected": {"ru": "Оплачено", "en": "Collected"},
    "open": {"ru": "Дебиторская задолженность", "en": "Open receivables"},
    "overdue": {"ru": "Просрочено", "en": "Overdue"},
    "invoices": {"ru": "Счетов", "en": "Invoices"},
    "currency": {"ru": "Валюта", "en": "Currency"},
    "crm": {"ru": "CRM", "en": "CRM"},
    "in_reporting": {"ru": "в валюте отчёта", "en": "in the reporting currency"},
    "unconverted": {"ru": "без курса", "en": "without a rate"},
    "unconverted_note": {
        "ru": "{n} счетов без курса к {cur} не вошли в итог в валюте отчёта (см. правило missing_fx_rate).",
        "en": "{n} invoices without a rate to {cur} are not in the reporting-currency totals (see rule missing_fx_rate)."},
    "headline_note": {
        "ru": "Выставлено и оплачено: неудалённые счета, кроме черновиков и аннулированных, выставленные не позже даты "
              "отчёта. Задолженность и просрочка: как в старении (rpt_ar_aging). Пересчёт в валюту отчёта — по курсу "
              "каждого счёта из fct_invoices.fx_rate_to_reporting.",
        "en": "Invoiced and collected: live invoices except drafts and cancelled ones, issued on or before the as-of "
              "date. Open and overdue: exactly the aging (rpt_ar_aging). Reporting-currency figures use each "
              "invoice's own rate, fct_invoices.fx_rate_to_reporting."},
    "freshness": {"ru": "Свежесть данных", "en": "Data freshness"},
    "last_success": {"ru": "Последняя успешная загрузка", "en": "Last successful load"},
    "last_run": {"ru": "Последний запуск", "en": "Last run"},
    "state": {"ru": "Состояние", "en": "State"},
    "st_ok": {"ru": "загружено", "en": "loaded"},
    "st_failed": {"ru": "ОШИБКА последней загрузки", "en": "last load FAILED"},
    "st_not_loaded": {"ru": "не загружалась", "en": "never loaded"},
    "failed_banner": {
        "ru": "{crm}: последняя загрузка не удалась ({when}). Цифры {crm} — на момент последней успешной загрузки ({ok}). "
              "Причина: {why}",
        "en": "{crm}: the last load failed ({when}). {crm} figures are as of its last successful load ({ok}). "
              "Cause: {why}"},
    "never": {"ru": "никогда", "en": "never"},
    # aging
    "s_aging": {"ru": "2. Старение дебиторской задолженности", "en": "2. Accounts receivable aging"},
    "bucket": {"ru": "Срок просрочки", "en": "Days past due"},
    "b_current": {"ru": "не просрочено", "en": "current"},
    "b_1-30": {"ru": "1–30 дн.", "en": "1–30 days"},
    "b_31-60": {"ru": "31–60 дн.", "en": "31–60 days"},
    "b_61-90": {"ru": "61–90 дн.", "en": "61–90 days"},
    "b_90+": {"ru": "более 90 дн.", "en": "90+ days"},
    "amount_due": {"ru": "К оплате", "en": "Amount due"},
    "top_clients": {"ru": "Крупнейшие должники (просрочка)", "en": "Top overdue clients"},
    "client": {"ru": "Клиент", "en": "Client"},
    "invoice": {"ru": "Счёт", "en": "Invoice"},
    "issue_date": {"ru": "Дата счёта", "en": "Issued"},
    "due_date": {"ru": "Срок оплаты", "en": "Due"},
    "days_past_due": {"ru": "Дней просрочки", "en": "Days past due"},
    "overdue_reporting": {"ru": "Просрочено в валюте отчёта", "en": "Overdue in reporting currency"},
    "aging_chart": {"ru": "Задолженность по срокам, {cur}", "en": "Receivables by age, {cur}"},
    # VAT
    "s_vat": {"ru": "3. НДС", "en": "3. VAT (НДС)"},
    "month": {"ru": "Месяц", "en": "Month"},
    "quarter": {"ru": "Квартал", "en": "Quarter"},
    "vat_rate": {"ru": "Ставка НДС", "en": "VAT rate"},
    "base": {"ru": "База (без НДС)", "en": "Base (net)"},
    "vat": {"ru": "НДС", "en": "VAT"},
    "gross": {"ru": "С НДС", "en": "Gross"},
    "without_vat": {"ru": "Без НДС", "en": "Without VAT (без НДС)"},
    "vat_quarters": {"ru": "Итоги по кварталам (для декларации по НДС)", "en": "Quarter totals (for the VAT return)"},
    "vat_months": {"ru": "По месяцам и ставкам", "en": "By month and rate"},
    "vat_chart": {"ru": "НДС по месяцам и ставкам, {cur}", "en": "VAT by month and rate, {cur}"},
    "vat_switch": {"ru": "22 % с 01.01.2026", "en": "22% from 1 Jan 2026"},
    "vat_note": {
        "ru": "Ставка берётся из строк счёта, где CRM их хранит (один счёт может иметь несколько ставок), иначе из "
              "счёта. Черновики, аннулированные и удалённые счета в базу НДС не входят. Основная ставка — 20 % до "
              "31.12.2025 и 22 % с 01.01.2026. «Без НДС» — счета без ставки (или со ставкой, которую нельзя определить).",
        "en": "The rate comes from the invoice lines where the CRM keeps lines (one invoice may mix rates), otherwise "
              "from the invoice. Drafts, cancelled and deleted invoices are not in the VAT base. The standard rate is "
              "20% until 31 Dec 2025 and 22% from 1 Jan 2026. \"Without VAT\" are invoices without a rate (or whose "
              "rate cannot be determined)."},
    "without_vat_with_vat": {
        "ru": "Внимание: в строках «без НДС» есть сумма НДС {amount} — ставку этих счетов определить не удалось.",
        "en": "Note: the \"without VAT\" rows carry VAT of {amount}: those invoices' rate could not be determined."},
    # invoiced vs collected
    "s_flow": {"ru": "4. Выставлено и оплачено по месяцам", "en": "4. Invoiced vs collected per month"},
    "flow_chart": {"ru": "Выставлено и оплачено, {cur}", "en": "Invoiced and collected, {cur}"},
    "undated": {"ru": "Оплаты без даты", "en": "Payments without a date"},
    "flow_note": {
        "ru": "Выставлено — по месяцу даты счёта; оплачено — по месяцу даты платежа (fct_payments) неудалённых счетов, "
              "до даты отчёта. Оплаты без даты (ONLYOFFICE не хранит платежей, SalesMan не хранит дату оплат через API) "
              "показаны отдельно.",
        "en": "Invoiced by month of issue; collected by month of the payment date (fct_payments) of live invoices, up "
              "to the as-of date. Payments without a date (ONLYOFFICE keeps no payments, SalesMan drops the date of "
              "payments made through its API) are shown apart."},
    # reconciliation
    "s_recon": {"ru": "5. Сверка: расхождения", "en": "5. Reconciliation exceptions"},
    "rule": {"ru": "Правило", "en": "Rule"},
    "severity": {"ru": "Важность", "en": "Severity"},
    "sev_error": {"ru": "ошибка", "en": "error"},
    "sev_warning": {"ru": "предупреждение", "en": "warning"},
    "count": {"ru": "Случаев", "en": "Count"},
    "share": {"ru": "Доля счетов CRM", "en": "Share of the CRM's invoices"},
    "at_stake": {"ru": "Сумма под вопросом", "en": "Money at stake"},
    "at_stake_reporting": {"ru": "Под вопросом в валюте отчёта", "en": "At stake in reporting currency"},
    "meaning": {"ru": "Что это значит", "en": "What it means"},
    "todo": {"ru": "Что делать", "en": "What to do"},
    "finding": {"ru": "Находка", "en": "Finding"},
    "systematic": {"ru": "системная причина", "en": "systematic cause"},
    "systematic_note": {
        "ru": "{rule}: {n} из {total} счетов {crm} ({pct}) — это одна системная причина, а не {n} отдельных ошибок: "
              "исправьте настройку в CRM, а не каждый счёт.",
        "en": "{rule}: {n} of {total} {crm} invoices ({pct}) — one systematic cause, not {n} separate errors: fix the "
              "CRM's setting, not each invoice."},
    "vat_pattern": {"ru": "ставка в счёте {declared}, НДС посчитан по {implied}",
                    "en": "invoice rate {declared}, VAT charged at {implied}"},
    "rows_of_rule": {"ru": "Счета ({n})", "en": "Invoices ({n})"},
    "rows_capped": {"ru": "Показаны первые {shown} из {n}; все — в CSV.", "en": "First {shown} of {n} shown; all in the CSV."},
    "expected": {"ru": "Ожидалось", "en": "Expected"},
    "actual": {"ru": "Фактически", "en": "Actual"},
    "message": {"ru": "Описание", "en": "Message"},
    "open_in_crm": {"ru": "открыть в CRM", "en": "open in the CRM"},
    "no_exceptions": {"ru": "Расхождений нет.", "en": "No exceptions."},
    "recon_chart": {"ru": "Расхождения по правилам", "en": "Exceptions by rule"},
    "about": {"ru": "О файле", "en": "About this file"},
    "about_text": {
        "ru": "Один самодостаточный HTML-файл: все стили и скрипты внутри, графики — SVG, шрифты — системные; при "
              "открытии файл не обращается ни к одному серверу (Content-Security-Policy это запрещает). Ссылки "
              "«открыть в CRM» ведут в CRM только по щелчку. Рядом лежит CSV для каждой таблицы.",
        "en": "One self-contained HTML file: every style and script is inside, charts are SVG, fonts are the system's; "
              "opening it contacts no server (its Content-Security-Policy forbids it). \"Open in the CRM\" links go "
              "to the CRM only when clicked. A CSV of every table sits beside it."},
}

RULES_SEED = MODELS_DIR / "seeds" / "reconciliation_rules.csv"


def _rules() -> dict[str, dict[str, dict[str, str]]]:
    """What each reconciliation rule means and what to do about it, per language, from the dbt seed that lists
    the rules once (models/seeds/reconciliation_rules.csv; the exceptions mart takes severity and message from
    it): {rule: {"meaning": {lang: text}, "todo": {lang: text}}}."""
    with RULES_SEED.open(encoding="utf-8", newline="") as f:
        return {row["rule"]: {"meaning": {lang: row[f"description_{lang}"] for lang in LANGS},
                              "todo": {lang: row[f"todo_{lang}"] for lang in LANGS}}
                for row in csv.DictReader(f)}


RULES = _rules()

CRM_NAMES = {spec.name: spec.display for spec in ALL_SOURCES}


def t(lang: str, key: str, **kwargs) -> str:
    text = TEXT[key][lang]
    return text.format(**kwargs) if kwargs else text


def rule_text(lang: str, rule: str, part: str) -> str:
    entry = RULES.get(rule)
    return entry[part][lang] if entry else ""


def default_lang(environ) -> str:
    """The locale's language: the first of LC_ALL, LC_MESSAGES, LANG that is set decides (POSIX order)."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name)
        if value:
            return "ru" if value.lower().startswith("ru") else "en"
    return "en"
