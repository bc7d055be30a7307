{#- config values pasted into sql must be plain: checked here, compilation fails otherwise -#}
{% macro plain_identifier(value, what) -%}
    {%- if value is not string or not modules.re.fullmatch('[a-z][a-z0-9_]{0,62}', value) -%}
        {{ exceptions.raise_compiler_error(
            what ~ " " ~ (value | tojson) ~ " is not a plain identifier: use lower-case letters, "
            ~ "digits and underscores, starting with a letter"
        ) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}


{% macro plain_key(value, what) -%}
    {%- if value is not string or not modules.re.fullmatch('[A-Za-z_][A-Za-z0-9_]{0,62}', value) -%}
        {{ exceptions.raise_compiler_error(
            what ~ " " ~ (value | tojson) ~ " is not a plain key: use letters, digits and "
            ~ "underscores, not starting with a digit"
        ) }}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}


{#- a quoted sql literal for a plain value (letters, digits, space and _ - . / : @ + #) -#}
{% macro plain_literal(value, what) -%}
    {%- if value is number and value is not boolean -%}
        {%- set value = value | string -%}
    {%- endif -%}
    {%- if value is not string
        or not modules.re.fullmatch('[A-Za-z0-9 _./:@+#-]{1,200}', value) -%}
        {{ exceptions.raise_compiler_error(
            what ~ " " ~ (value | tojson) ~ " is not a plain value: use letters, digits, spaces "
            ~ "and _ - . / : @ + # (no quotes), at most 200 characters"
        ) }}
    {%- endif -%}
    {{ return("'" ~ value ~ "'") }}
{%- endmacro %}


{% macro literal_list(values, what) -%}
    {%- if values is string or values is not iterable or values | length == 0 -%}
        {{ exceptions.raise_compiler_error(what ~ " must be a non-empty list") }}
    {%- endif -%}
    {%- set out = [] -%}
    {%- for value in values -%}
        {%- do out.append(plain_literal(value, what)) -%}
    {%- endfor -%}
    {{ return(out | join(', ')) }}
{%- endmacro %}


{% macro positive_int(value, what) -%}
    {%- if value is boolean or (value | string) is not string
        or not modules.re.fullmatch('[1-9][0-9]{0,8}', value | string) -%}
        {{ exceptions.raise_compiler_error(
            what ~ " " ~ (value | tojson) ~ " is not a positive integer"
        ) }}
    {%- endif -%}
    {{ return(value | int) }}
{%- endmacro %}
