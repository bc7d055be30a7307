{#-
  dbt's hook that wraps the model under every generic data test (it applies a test's `where`
  config). Overridden so that a run with min_date/max_date tests only the rows of its window in
  the models that name their day column in `meta.window_column`: an incremental run re-checks
  what it rewrote instead of the whole history (at 10M events the tests would cost more than the
  models). A run without vars, a full refresh and a plain `dbt test` still test every row.
  Relationship tests filter the child only; the parent is read whole.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set conditions = [] -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- do conditions.append('(' ~ where ~ ')') -%}
    {%- endif -%}
    {%- set column = window_column_of(relation) -%}
    {%- if column and has_partition_range() -%}
        {%- do conditions.append(in_partition_range(column)) -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ (conditions | join(' and ')) ~ ') dbt_subquery') -%}
    {%- endif -%}
    {%- do return(relation) -%}
{%- endmacro %}


{#- the `meta.window_column` of the model stored at `relation` (none for anything else) -#}
{% macro window_column_of(relation) -%}
    {%- if not execute or relation.identifier is not defined -%}
        {%- do return(none) -%}
    {%- endif -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'model'
            and (node.alias or node.name) | lower == (relation.identifier or '') | lower
            and node.schema | lower == (relation.schema or '') | lower -%}
            {%- do return(node.config.meta.get('window_column')) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- do return(none) -%}
{%- endmacro %}
