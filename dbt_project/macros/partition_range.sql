{#-
  the partition window passed by the orchestrator: --vars '{min_date: 2024-03-01, max_date: 2024-03-02}'
  (inclusive iso dates). either bound may be omitted; none means the whole history.
-#}
{% macro partition_bound(var_name) -%}
    {%- set value = var(var_name, none) -%}
    {%- if value is none or value == '' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set text = value | string -%}
    {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', text) -%}
        {{ exceptions.raise_compiler_error(
            "var " ~ var_name ~ "=" ~ (text | tojson) ~ " is not an ISO date (YYYY-MM-DD)"
        ) }}
    {%- endif -%}
    {{ return(text) }}
{%- endmacro %}


{% macro has_partition_range() -%}
    {{ return(partition_bound('min_date') is not none or partition_bound('max_date') is not none) }}
{%- endmacro %}


{#- sql predicate: the date expression falls inside the partition window (true without vars) -#}
{% macro in_partition_range(date_expression) -%}
    {%- set low = partition_bound('min_date') -%}
    {%- set high = partition_bound('max_date') -%}
    {%- if low is not none and high is not none and low > high -%}
        {{ exceptions.raise_compiler_error(
            "min_date " ~ low ~ " is after max_date " ~ high
        ) }}
    {%- endif -%}
    {#- rendered on one line so it sits in any sql layout -#}
    (true
    {%- if low is not none %} and {{ date_expression }} >= date '{{ low }}'{% endif -%}
    {%- if high is not none %} and {{ date_expression }} <= date '{{ high }}'{% endif -%}
    )
{%- endmacro %}


{#- sql query: the message_ids with a raw delivery whose skew-corrected day (staging's event_date)
    falls inside the partition window: what stg_raw__tracking_events derives again in a run -#}
{% macro messages_delivered_in_window() -%}
    select windowed.message_id from {{ source('raw', 'tracking_events') }} as windowed
    where {{ in_partition_range(event_at_sql(
        "timezone('UTC', windowed.timestamp::timestamptz)",
        "timezone('UTC', windowed.sent_at::timestamptz)",
        "timezone('UTC', windowed.received_at::timestamptz)",
    ) ~ '::date') }}
{%- endmacro %}
