{#-
  Money rules (README "Money"), in one place:
  - Stored money is DECIMAL(18,2) in the invoice's own currency (raw amounts and every mart amount column that
    is not a reporting-currency amount): up to 9,999,999,999,999,999.99, far above the 999,999,999,999.99 a
    CRM can hold.
  - A source's rate to its account's base currency is DECIMAL(18,8): 0.00000001 to 9,999,999,999.99999999
    (0.000001 and 1,000,000 are exact).
  - A rate to the reporting currency is DECIMAL(38,12); a reporting-currency amount is DECIMAL(38,2).
  - Every product and quotient of money is computed in DECIMAL(38,·) (DuckDB multiplies two DECIMAL(18,·)
    operands in 64 bits and overflows: 37,037,036.70 × 93.23 already does), never in a float, and rounded
    once, at the end.
  - One rounding rule: half up, i.e. a tie goes away from zero (0.125 -> 0.13, -0.125 -> -0.13). It is what
    SQL's round() and a cast to fewer decimals do on decimals in DuckDB and PostgreSQL alike. (The ONLYOFFICE
    line pricing replays that CRM's own arithmetic, which rounds half to even; see round_half_even.)
-#}

{#- Stored money (the invoice's currency). -#}
{% macro money(expr) -%}
    cast({{ expr }} as decimal(18,2))
{%- endmacro %}

{#- A source's rate to its account's base currency. -#}
{% macro fx_rate(expr) -%}
    cast({{ expr }} as decimal(18,8))
{%- endmacro %}

{% macro percent(expr) -%}
    cast({{ expr }} as decimal(9,4))
{%- endmacro %}

{#- A rate to the reporting currency, and an amount in it. -#}
{% macro reporting_rate(expr) -%}
    cast({{ expr }} as decimal(38,12))
{%- endmacro %}

{% macro reporting_money(expr) -%}
    cast({{ expr }} as decimal(38,2))
{%- endmacro %}

{#- An operand widened before it is multiplied: the product then has 38 digits of room. -#}
{% macro wide(expr, scale) -%}
    cast({{ expr }} as decimal(38,{{ scale }}))
{%- endmacro %}

{#-
  `amount` (money) in the reporting currency at `rate` (units of the reporting currency per unit): the exact
  product, rounded once to the kopeck, half up. DECIMAL(38,2) x DECIMAL(38,12) has 24 integer digits of room:
  999,999,999,999.99 at a rate of 1,000,000 is 999,999,999,999,990,000.00, six orders of magnitude inside.
-#}
{% macro to_reporting(amount, rate) -%}
    {{ reporting_money('round(' ~ wide(amount, 2) ~ ' * ' ~ wide(rate, 12) ~ ', 2)') }}
{%- endmacro %}

{#-
  numerator / denominator truncated toward zero to `digits` decimals, exactly, as DECIMAL(38, digits). A decimal
  division is a float on DuckDB, so there both operands become integers (they must carry at most 8 decimals)
  and are divided as HUGEINTs; PostgreSQL's div() on numerics is exact already. Magnitude (DuckDB):
  |numerator| x 10^(8 + digits) must stay below 1.7 x 10^38.
-#}
{% macro truncated_quotient(numerator, denominator, digits) -%}
    {{ return(adapter.dispatch('truncated_quotient', 'crm_invoices')(numerator, denominator, digits)) }}
{%- endmacro %}

{% macro default__truncated_quotient(numerator, denominator, digits) -%}
    (div(cast({{ numerator }} as numeric) * 1{{ '0' * digits }}, cast({{ denominator }} as numeric))
        * cast(0.{{ '0' * (digits - 1) }}1 as decimal(38,{{ digits }})))
{%- endmacro %}

{% macro duckdb__truncated_quotient(numerator, denominator, digits) -%}
    (cast(cast({{ wide(numerator, 8) }} * 100000000 as hugeint) * 1{{ '0' * digits }}
        // cast({{ wide(denominator, 8) }} * 100000000 as hugeint) as decimal(38,0))
        * cast(0.{{ '0' * (digits - 1) }}1 as decimal(38,{{ digits }})))
{%- endmacro %}

{#-
  numerator / denominator rounded half up to `scale` decimals, exactly. Truncating one digit further and then
  rounding gives the same result as rounding the exact quotient (the digits dropped cannot turn a tie into
  more or less than one), so there is still a single rounding.
-#}
{% macro divide(numerator, denominator, scale) -%}
    round({{ truncated_quotient(numerator, denominator, scale + 1) }}, {{ scale }})
{%- endmacro %}

{#-
  The VAT contained in a gross amount at a rate in percent: gross x rate / (100 + rate), to the kopeck, half up.
-#}
{% macro vat_in_gross(gross, rate) -%}
    {{ money(divide(wide(gross, 2) ~ ' * ' ~ wide(rate, 4), '100 + ' ~ wide(rate, 4), 2)) }}
{%- endmacro %}

{#-
  A cross rate: units of the reporting currency per unit of the invoice currency, from the two currencies'
  rates to the same base (both positive DECIMAL(18,8)). The quotient is exact and rounded half up once: to 8
  decimals, and below 0.01 to 7 significant digits (at most 12 decimals: 0.000001 keeps 7 digits), so a rate
  such as 1 IRR = 0.000001 USD is not flattened to 0.00000100 +- 50 %.
-#}
{% macro fx_cross_rate(rate_to_base, reporting_rate_to_base) -%}
    {#- each branch is cast on its own: DuckDB would cast every branch to the first one's DECIMAL(38,8) #}
    {%- set t = truncated_quotient(rate_to_base, reporting_rate_to_base, 13) -%}
    (case
        {%- for floor, scale in [('0.01', 8), ('0.001', 9), ('0.0001', 10), ('0.00001', 11)] %}
        when {{ t }} >= {{ floor }} then {{ reporting_rate('round(' ~ t ~ ', ' ~ scale ~ ')') }}
        {%- endfor %}
        else {{ reporting_rate('round(' ~ t ~ ', 12)') }}
    end)
{%- endmacro %}

{#-
  x rounded to 2 decimals half to even, in wide decimals: Math.Round(x, 2) as ONLYOFFICE's server computes it
  (.NET rounds half to even). Only for replaying that CRM's own arithmetic, so our lines add up to the cost it
  shows; never for our conversions. Multiplying by 0.01 instead of dividing by 100 keeps the value a decimal
  (division yields a double on DuckDB).
-#}
{% macro round_half_even(expr) -%}
    {%- set x = '(' ~ wide(expr, 10) ~ ')' -%}
    (case
        when abs({{ x }} * 100 - trunc({{ x }} * 100)) = 0.5
            then (trunc({{ x }} * 100) + case when mod(trunc({{ x }} * 100), 2) = 0 then 0 else sign({{ x }}) end) * 0.01
        else round({{ x }}, 2)
    end)
{%- endmacro %}
