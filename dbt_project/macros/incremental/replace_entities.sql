{#-
  incremental strategy `replace_entities`: the model's new rows replace every stored row of the
  same entity (config `replace_key`) and of every alias of that entity (config
  `replace_aliases={'model': m, 'entity': column, 'alias': column}`: the rows of model `m`
  pairing an entity with an alias that was stored under its own key before, e.g. an anonymous
  id stitched to a user since). with `replace_interval=[start, end]` only stored rows
  overlapping the span [min(start), max(end)] of the entity's new rows are replaced: the model
  recomputed exactly that span.
-#}
{% macro get_incremental_replace_entities_sql(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set temp = arg_dict['temp_relation'] -%}
    {%- set unique_key = arg_dict['unique_key'] -%}
    {%- if not unique_key or unique_key is not string -%}
        {{ exceptions.raise_compiler_error("replace_entities needs a single-column unique_key") }}
    {%- endif -%}
    {%- set columns = arg_dict['dest_columns'] | map(attribute='quoted') | join(', ') -%}
    {%- set key = config.get('replace_key', none) -%}
    {%- if not key -%}
        {{ exceptions.raise_compiler_error("replace_entities needs config replace_key") }}
    {%- endif -%}
    {%- set aliases = config.get('replace_aliases', none) -%}
    {%- set span = config.get('replace_interval', none) -%}
    delete from {{ target }}
    where {{ unique_key }} in (
        with new_entities as (
            select
                {{ key }} as entity_key
                {%- if span %},
                min({{ span[0] }}) as from_at,
                max({{ span[1] }}) as to_at
                {%- endif %}
            from {{ temp }}
            group by 1
        ),

        replaced as (
            select * from new_entities
            {%- if aliases %}
            union all
            select
                aliases.{{ aliases['alias'] }} as entity_key
                {%- if span %},
                new_entities.from_at,
                new_entities.to_at
                {%- endif %}
            from new_entities
            inner join {{ ref(aliases['model']) }} as aliases
                on new_entities.entity_key = aliases.{{ aliases['entity'] }}
            {%- endif %}
        )

        select stored.{{ unique_key }}
        from {{ target }} as stored
        inner join replaced
            on
                stored.{{ key }} = replaced.entity_key
                {%- if span %}
                and stored.{{ span[0] }} <= replaced.to_at
                and stored.{{ span[1] }} >= replaced.from_at
                {%- endif %}
        union all
        select {{ unique_key }} from {{ temp }}
    );

    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ temp }};
{%- endmacro %}
