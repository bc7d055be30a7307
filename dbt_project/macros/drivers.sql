{#-
  conversion drivers are configured in dbt_project.yml (vars drivers__*, see README.md
  "Conversion drivers"); every value pasted into sql is validated here first.
-#}

{#- the event property keys whose values are candidate drivers (keep them low-cardinality) -#}
{% macro driver_properties() -%}
    {%- set keys = var('drivers__properties', []) -%}
    {%- if keys is none -%}
        {{ return([]) }}
    {%- endif -%}
    {%- if keys is string or keys is mapping or keys is not iterable -%}
        {{ exceptions.raise_compiler_error("var drivers__properties must be a list of property keys") }}
    {%- endif -%}
    {%- set out = [] -%}
    {%- for key in keys -%}
        {%- do out.append(plain_key(key, 'drivers__properties key')) -%}
    {%- endfor -%}
    {{ return(out) }}
{%- endmacro %}


{#- sql literals of the track event names the funnel's required steps match (not drivers of
    it); an optional step may be skipped, so whether doing it goes with converting is a driver -#}
{% macro funnel_step_event_literals(f) -%}
    {{ return(f.steps | rejectattr('optional') | selectattr('kind', 'equalto', 'event') | map(attribute='literal') | list) }}
{%- endmacro %}


{#- sql rows (funnel_name, from_step, to_step): each required step to the next required one;
    an optional step may be skipped on the way, so it is no transition of its own -#}
{% macro funnel_transition_rows(funnels) -%}
    {%- set rows = [] -%}
    {%- for f in funnels -%}
        {%- for k in range(2, (f.steps | length) + 1) if not f.steps[k - 1].optional -%}
            {%- do rows.append("('" ~ f.name ~ "', " ~ funnel_previous_required(f, k) ~ ", " ~ k ~ ")") -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(rows) }}
{%- endmacro %}
