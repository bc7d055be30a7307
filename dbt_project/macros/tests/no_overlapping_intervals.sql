{#-
  within each partition, the closed intervals [start, end] never overlap: for sessions this means
  no event can belong to two sessions of the same entity.
-#}
{% test no_overlapping_intervals(model, start_column, end_column, partition_by) %}
    with ordered as (
        select
            {{ partition_by }} as partition_key,
            {{ start_column }} as interval_start,
            {{ end_column }} as interval_end,
            max({{ end_column }}) over (
                partition by {{ partition_by }}
                order by {{ start_column }}, {{ end_column }}
                rows between unbounded preceding and 1 preceding
            ) as previous_max_end
        from {{ model }}
    )

    select * from ordered
    where interval_start <= previous_max_end
{% endtest %}
