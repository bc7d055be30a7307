{#-
  incremental strategy `replace_rows`: every stored row whose unique_key is in the model's new
  rows is deleted; the new rows are inserted, but with `replace_insert_where` (a boolean column)
  only those where it is true: the others were recomputed only to find out they must go.
-#}
{% macro get_incremental_replace_rows_sql(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set temp = arg_dict['temp_relation'] -%}
    {%- set unique_key = arg_dict['unique_key'] -%}
    {%- if not unique_key or unique_key is not string -%}
        {{ exceptions.raise_compiler_error("replace_rows needs a single-column unique_key") }}
    {%- endif -%}
    {%- set columns = arg_dict['dest_columns'] | map(attribute='quoted') | join(', ') -%}
    {%- set insert_where = config.get('replace_insert_where', none) -%}
    delete from {{ target }}
    where {{ unique_key }} in (select {{ unique_key }} from {{ temp }});

    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ temp }}
    {%- if insert_where %}
    where {{ plain_identifier(insert_where, 'replace_insert_where') }}
    {%- endif %};
{%- endmacro %}
