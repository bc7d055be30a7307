{#-
  funnels are declared in dbt_project.yml under vars.funnels__definitions (see README.md).
  everything taken from that config and pasted into sql is validated here first.
-#}
{% macro funnel_definitions() -%}
    {%- set raw = var('funnels__definitions', []) -%}
    {%- if raw is string or raw is mapping or raw is not iterable -%}
        {{ exceptions.raise_compiler_error("var funnels__definitions must be a list of funnels") }}
    {%- endif -%}
    {%- set funnels = [] -%}
    {%- set seen = [] -%}
    {%- for f in raw -%}
        {%- if f is not mapping -%}
            {{ exceptions.raise_compiler_error("funnel #" ~ loop.index ~ " must be a mapping") }}
        {%- endif -%}
        {%- set name = plain_identifier(f.get('name'), 'funnel name') -%}
        {%- if name in seen -%}
            {{ exceptions.raise_compiler_error("funnel name " ~ name ~ " is declared twice") }}
        {%- endif -%}
        {%- do seen.append(name) -%}
        {%- set unknown = f.keys() | reject('in', ['name', 'scope', 'order', 'window_minutes', 'steps', 'description', 'exclusions', 'hold_constant']) | list -%}
        {%- if unknown -%}
            {{ exceptions.raise_compiler_error("funnel " ~ name ~ ": unknown keys " ~ (unknown | tojson)) }}
        {%- endif -%}
        {%- set scope = f.get('scope', 'session') -%}
        {%- if scope not in ['session', 'user'] -%}
            {{ exceptions.raise_compiler_error("funnel " ~ name ~ ": scope must be session or user, got " ~ (scope | tojson)) }}
        {%- endif -%}
        {%- set order = f.get('order', 'sequential') -%}
        {%- if order not in ['sequential', 'strict', 'any'] -%}
            {{ exceptions.raise_compiler_error("funnel " ~ name ~ ": order must be sequential, strict or any, got " ~ (order | tojson)) }}
        {%- endif -%}
        {%- set window_minutes = positive_int(f.get('window_minutes'), 'funnel ' ~ name ~ ': window_minutes') -%}
        {%- set raw_steps = f.get('steps') -%}
        {%- if raw_steps is string or raw_steps is mapping or raw_steps is not iterable or raw_steps | length < 1 -%}
            {{ exceptions.raise_compiler_error("funnel " ~ name ~ ": steps must be a non-empty list") }}
        {%- endif -%}
        {%- set steps = [] -%}
        {%- set step_names = [] -%}
        {%- for s in raw_steps -%}
            {%- set where = "funnel " ~ name ~ " step #" ~ loop.index -%}
            {%- if s is not mapping -%}
                {{ exceptions.raise_compiler_error(where ~ " must be a mapping") }}
            {%- endif -%}
            {%- set step_name = plain_identifier(s.get('name'), where ~ ' name') -%}
            {%- if step_name in step_names -%}
                {{ exceptions.raise_compiler_error(where ~ ": step name " ~ step_name ~ " is used twice") }}
            {%- endif -%}
            {%- do step_names.append(step_name) -%}
            {%- set kinds = ['event', 'page_path', 'screen'] | select('in', s.keys()) | list -%}
            {%- if kinds | length != 1 -%}
                {{ exceptions.raise_compiler_error(where ~ " (" ~ step_name ~ "): give exactly one of event, page_path, screen") }}
            {%- endif -%}
            {%- set unknown_step_keys = s.keys() | reject('in', ['name', 'event', 'page_path', 'screen', 'properties', 'optional', 'first_time']) | list -%}
            {%- if unknown_step_keys -%}
                {{ exceptions.raise_compiler_error(where ~ ": unknown keys " ~ (unknown_step_keys | tojson)) }}
            {%- endif -%}
            {%- set optional = funnel_flag(s, 'optional', where) -%}
            {%- if optional and order != 'sequential' -%}
                {{ exceptions.raise_compiler_error(where ~ " (" ~ step_name ~ "): optional steps need order sequential (in strict order every event is a step; in any order steps are counted by position, not by name)") }}
            {%- endif -%}
            {%- if optional and (loop.first or loop.last) -%}
                {{ exceptions.raise_compiler_error(where ~ " (" ~ step_name ~ "): the first and the last step cannot be optional (an attempt starts at the first and converts at the last)") }}
            {%- endif -%}
            {%- do steps.append({
                'name': step_name,
                'kind': kinds[0],
                'literal': plain_literal(s[kinds[0]], where ~ ' ' ~ kinds[0]),
                'filters': funnel_property_filters(s.get('properties', {}), where),
                'optional': optional,
                'first_time': funnel_flag(s, 'first_time', where),
            }) -%}
        {%- endfor -%}
        {%- set hold_constant = funnel_hold_constant(f.get('hold_constant', []), name, order) -%}
        {%- set exclusions = funnel_exclusions(f.get('exclusions', []), name, order, step_names) -%}
        {%- do funnels.append({
            'name': name,
            'scope': scope,
            'order': order,
            'window_minutes': window_minutes,
            'steps': steps,
            'hold_constant': hold_constant,
            'exclusions': exclusions,
            'has_optional': steps | selectattr('optional') | list | length > 0,
        }) -%}
    {%- endfor -%}
    {%- if funnels | length == 0 -%}
        {{ exceptions.raise_compiler_error("var funnels__definitions declares no funnel") }}
    {%- endif -%}
    {{ return(funnels) }}
{%- endmacro %}


{#- a step's `properties`: {key, literal} pairs every matching event must carry -#}
{% macro funnel_property_filters(props, where) -%}
    {%- if props is not mapping -%}
        {{ exceptions.raise_compiler_error(where ~ ": properties must be a mapping of key: value") }}
    {%- endif -%}
    {%- set filters = [] -%}
    {%- for key, value in props.items() -%}
        {%- do filters.append({
            'key': plain_key(key, where ~ ' property key'),
            'literal': plain_literal(value, where ~ ' property ' ~ key ~ ' value'),
        }) -%}
    {%- endfor -%}
    {{ return(filters) }}
{%- endmacro %}


{% macro funnel_flag(mapping, key, where) -%}
    {%- set value = mapping.get(key, false) -%}
    {%- if value is not boolean -%}
        {{ exceptions.raise_compiler_error(where ~ ": " ~ key ~ " must be true or false, got " ~ (value | tojson)) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}


{#- hold_constant: the property keys every step of one attempt shares the value of -#}
{% macro funnel_hold_constant(raw, name, order) -%}
    {%- set where = "funnel " ~ name ~ ": hold_constant" -%}
    {%- if raw is string or raw is mapping or raw is not iterable -%}
        {{ exceptions.raise_compiler_error(where ~ " must be a list of property keys") }}
    {%- endif -%}
    {%- set keys = [] -%}
    {%- for key in raw -%}
        {%- do keys.append(plain_key(key, where ~ ' key')) -%}
    {%- endfor -%}
    {%- if keys | unique | list | length != keys | length -%}
        {{ exceptions.raise_compiler_error(where ~ " names a key twice") }}
    {%- endif -%}
    {%- if keys and order == 'strict' -%}
        {{ exceptions.raise_compiler_error(where ~ " is not supported with order strict (the very next event of an entity can carry another value, so parallel attempts would break each other)") }}
    {%- endif -%}
    {{ return(keys) }}
{%- endmacro %}


{#- exclusions: [{event, after, before, properties}], after and before being step names in order -#}
{% macro funnel_exclusions(raw, name, order, step_names) -%}
    {%- if raw is string or raw is mapping or raw is not iterable -%}
        {{ exceptions.raise_compiler_error("funnel " ~ name ~ ": exclusions must be a list of {event, after, before}") }}
    {%- endif -%}
    {%- if raw | length > 0 and order != 'sequential' -%}
        {{ exceptions.raise_compiler_error("funnel " ~ name ~ ": exclusions need order sequential (in strict order no event comes between two steps; in any order steps have no order)") }}
    {%- endif -%}
    {%- set exclusions = [] -%}
    {%- for x in raw -%}
        {%- set where = "funnel " ~ name ~ " exclusion #" ~ loop.index -%}
        {%- if x is not mapping -%}
            {{ exceptions.raise_compiler_error(where ~ " must be a mapping") }}
        {%- endif -%}
        {%- set unknown = x.keys() | reject('in', ['event', 'after', 'before', 'properties']) | list -%}
        {%- if unknown -%}
            {{ exceptions.raise_compiler_error(where ~ ": unknown keys " ~ (unknown | tojson)) }}
        {%- endif -%}
        {%- for key in ['after', 'before'] -%}
            {%- if x.get(key) not in step_names -%}
                {{ exceptions.raise_compiler_error(where ~ ": " ~ key ~ " must name a step of the funnel (" ~ (step_names | join(', ')) ~ "), got " ~ (x.get(key) | tojson)) }}
            {%- endif -%}
        {%- endfor -%}
        {%- set after = step_names.index(x.after) + 1 -%}
        {%- set before = step_names.index(x.before) + 1 -%}
        {%- if after >= before -%}
            {{ exceptions.raise_compiler_error(where ~ ": step " ~ x.after ~ " must come before step " ~ x.before) }}
        {%- endif -%}
        {%- do exclusions.append({
            'kind': 'event',
            'literal': plain_literal(x.get('event'), where ~ ' event'),
            'filters': funnel_property_filters(x.get('properties', {}), where),
            'after': after,
            'before': before,
        }) -%}
    {%- endfor -%}
    {{ return(exclusions) }}
{%- endmacro %}


{% macro funnel_max_steps(funnels) -%}
    {%- set counts = funnels | map(attribute='steps') | map('length') | list -%}
    {{ return(counts | max) }}
{%- endmacro %}


{#- sql predicate: the event (columns of int_events__stitched) matches the step -#}
{% macro funnel_step_condition(step) -%}
    {%- if step.kind == 'event' -%}
        event_type = 'track' and event_name = {{ step.literal }}
    {%- elif step.kind == 'page_path' -%}
        event_type = 'page' and page_path = {{ step.literal }}
    {%- else -%}
        event_type = 'screen' and screen_name = {{ step.literal }}
    {%- endif -%}
    {#- json_extract_string, not ->>: DuckDB 1.5 miscasts `->> ... = ` after a pushed-down filter -#}
    {%- for f in step.filters %}
        and json_extract_string(properties, '$.{{ f.key }}') = {{ f.literal }}
    {%- endfor -%}
{%- endmacro %}


{#- labels of the step positions: the step names, or "k of n" for funnels in any order -#}
{% macro funnel_position_names(f) -%}
    {%- set n = f.steps | length -%}
    {%- set names = [] -%}
    {%- for s in f.steps -%}
        {%- if f.order == 'any' -%}
            {%- do names.append('steps_' ~ loop.index ~ '_of_' ~ n) -%}
        {%- else -%}
            {%- do names.append(s.name) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(names) }}
{%- endmacro %}


{#- the step number of the required step before step k (0 for step 1) -#}
{% macro funnel_previous_required(f, k) -%}
    {%- set before = [0] -%}
    {%- for s in f.steps[:k - 1] -%}
        {%- if not s.optional -%}
            {%- do before.append(loop.index) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(before | last) }}
{%- endmacro %}
