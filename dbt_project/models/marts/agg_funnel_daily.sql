-- rebuilt on every run from fct_funnel_progress (one row per attempt, small): a partition run
-- can move attempts between days, so a full rebuild is the simplest way to stay exact
{%- set funnels = funnel_definitions() -%}
{%- set max_steps = funnel_max_steps(funnels) %}

with

attempts as (
    select * from {{ ref('fct_funnel_progress') }}
),

step_numbers as (
    select unnest(range(1, {{ max_steps + 1 }})) as step_number
),

attempt_steps as (
    select
        attempts.funnel_name,
        attempts.attempt_date,
        coalesce(attempts.platform, 'unknown') as platform,
        coalesce(attempts.channel, 'unknown') as channel,
        attempts.started_at,
        attempts.is_still_open,
        attempts.seconds_to_convert,
        step_numbers.step_number,
        [
            {%- for k in range(1, max_steps + 1) %}attempts.step_{{ k }}_at{% if not loop.last %}, {% endif %}{% endfor -%}
        ][step_numbers.step_number] as step_at,
        case
            when step_numbers.step_number > 1
                then [
                    {%- for k in range(1, max_steps + 1) %}attempts.step_{{ k }}_at{% if not loop.last %}, {% endif %}{% endfor -%}
                ][step_numbers.step_number - 1]
        end as previous_step_at
    from attempts
    inner join step_numbers
        on step_numbers.step_number <= attempts.funnel_step_count
),

daily as (
    select
        funnel_name,
        attempt_date,
        step_number,
        platform,
        channel,
        count(*) as attempts_entered,
        count(step_at) as attempts_reached,
        count(*) filter (where step_at is null and is_still_open) as attempts_still_open,
        count(*) filter (
            where step_at is null and previous_step_at is not null and not is_still_open
        ) as attempts_dropped_off,
        median(epoch(step_at - started_at)) as median_seconds_to_reach,
        median(seconds_to_convert) as median_seconds_to_convert
    from attempt_steps
    group by funnel_name, attempt_date, step_number, platform, channel
),

rates as (
    select
        *,
        lag(attempts_reached) over (
            partition by funnel_name, attempt_date, platform, channel
            order by step_number
        ) as previous_step_reached
    from daily
),

final as (
    select
        md5(concat_ws('|', funnel_name, attempt_date, step_number, platform, channel))
            as funnel_daily_id,
        funnel_name,
        attempt_date,
        step_number,
        case funnel_name
            {%- for f in funnels %}
            when '{{ f.name }}' then [
                {%- for label in funnel_position_names(f) %}'{{ label }}'{% if not loop.last %}, {% endif %}{% endfor -%}
            ][step_number]
            {%- endfor %}
        end as step_name,
        platform,
        channel,
        attempts_entered,
        attempts_reached,
        attempts_still_open,
        attempts_dropped_off,
        case
            when step_number = 1 then 1.0
            when previous_step_reached > 0 then attempts_reached / previous_step_reached
        end as conversion_from_previous,
        attempts_reached / attempts_entered as conversion_from_first,
        median_seconds_to_reach,
        median_seconds_to_convert
    from rates
)

select * from final
