{#-
  within each group, the column never increases as order_by grows (funnel counts along the
  steps), groups given by the `group_by` columns.
-#}
{% test non_increasing_along(model, column_name, order_by, group_by) %}
    with ordered as (
        select
            *,
            lag({{ column_name }}) over (
                partition by {{ group_by | join(', ') }}
                order by {{ order_by }}
            ) as previous_value
        from {{ model }}
    )

    select * from ordered
    where {{ column_name }} > previous_value
{% endtest %}
