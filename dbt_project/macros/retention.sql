{#-
  retention is configured in dbt_project.yml (vars retention__*, see README.md "Retention");
  every value pasted into sql is validated here first.
-#}

{#- sql predicate on int_events__stitched: the event counts as a return. An empty list of
    returning events means any activity (a track, page or screen event) -#}
{% macro retention_returning_condition() -%}
    {%- set names = var('retention__returning_events', []) -%}
    {%- if names is none or (names is iterable and names is not string and names | length == 0) -%}
        is_session_event
    {%- elif names is string or names is mapping or names is not iterable -%}
        {{ exceptions.raise_compiler_error(
            "var retention__returning_events must be a list of track event names (empty: any activity)"
        ) }}
    {%- else -%}
        (event_type = 'track' and event_name in ({{ literal_list(names, 'retention__returning_events') }}))
    {%- endif -%}
{%- endmacro %}


{#- the most periods after the cohort's own (period 0) that the mart reports, per cohort grain -#}
{% macro retention_max_periods(grain) -%}
    {%- set name = 'retention__max_' ~ grain ~ '_periods' -%}
    {{ return(positive_int(var(name), 'var ' ~ name)) }}
{%- endmacro %}
