-- rebuilt on every run: a late event can move an entity into an earlier cohort, and a cohort
-- row counts distinct entities, so it cannot be patched day by day; the inputs are one row per
-- entity and one per entity and active day, small next to the events
{{ config(materialized='table') }}

with

sessions as (
    select * from {{ ref('fct_sessions') }}
),

events as (
    select * from {{ ref('int_events__stitched') }}
),

-- the last day the warehouse has seen activity on: periods after it are not reported, and a
-- period reaching it may still grow (is_period_complete)
watermark as (
    select max(event_date) as watermark_date from events
    where is_session_event
),

-- the entity's first session gives its cohort day and its breakdown (platform, channel)
first_sessions as (
    select
        user_key,
        session_date as cohort_day,
        coalesce(platform, 'unknown') as platform,
        coalesce(channel, 'unknown') as channel
    from sessions
    qualify row_number() over (partition by user_key order by started_at, session_id) = 1
),

active_days as (
    select distinct
        user_key,
        event_date as active_date
    from events
    where {{ retention_returning_condition() }}
),

grains as (
    select
        grain.cohort_grain,
        grain.period_days,
        grain.max_periods
    from (
        values
        ('day', 1, {{ retention_max_periods('day') }}),
        ('week', 7, {{ retention_max_periods('week') }})
    ) as grain (cohort_grain, period_days, max_periods)
),

-- weeks start on monday (iso weeks)
cohort_members as (
    select
        first_sessions.user_key,
        grains.cohort_grain,
        grains.period_days,
        grains.max_periods,
        first_sessions.platform,
        first_sessions.channel,
        case grains.cohort_grain
            when 'day' then first_sessions.cohort_day
            else date_trunc('week', first_sessions.cohort_day)::date
        end as cohort_date
    from first_sessions
    cross join grains
),

cohort_sizes as (
    select
        cohort_grain,
        period_days,
        max_periods,
        cohort_date,
        platform,
        channel,
        count(*) as cohort_size
    from cohort_members
    group by all
),

member_periods as (
    select distinct
        cohort_members.cohort_grain,
        cohort_members.cohort_date,
        cohort_members.platform,
        cohort_members.channel,
        cohort_members.user_key,
        (active_days.active_date - cohort_members.cohort_date) // cohort_members.period_days
            as period_number
    from cohort_members
    inner join active_days
        on cohort_members.user_key = active_days.user_key
),

retained as (
    select
        cohort_grain,
        cohort_date,
        platform,
        channel,
        period_number,
        count(*) as retained_entities
    from member_periods
    group by all
),

period_numbers as (
    select unnest(range(0, max(max_periods) + 1)) as period_number from grains
),

-- every period from the cohort's own up to the last one the warehouse has reached, so a period
-- nobody came back in is a row with 0
cohort_periods as (
    select
        cohort_sizes.*,
        period_numbers.period_number
    from cohort_sizes
    cross join watermark
    inner join period_numbers
        on cohort_sizes.max_periods >= period_numbers.period_number
    where
        cohort_sizes.cohort_date + (period_numbers.period_number * cohort_sizes.period_days)::integer
        <= watermark.watermark_date
),

final as (
    select
        md5(concat_ws(
            '|',
            cohort_periods.cohort_grain,
            cohort_periods.cohort_date,
            cohort_periods.period_number,
            cohort_periods.platform,
            cohort_periods.channel
        )) as retention_id,
        cohort_periods.cohort_grain,
        cohort_periods.cohort_date,
        cohort_periods.period_number,
        cohort_periods.cohort_date
        + (cohort_periods.period_number * cohort_periods.period_days)::integer
            as period_start_date,
        cohort_periods.platform,
        cohort_periods.channel,
        cohort_periods.cohort_size,
        coalesce(retained.retained_entities, 0) as retained_entities,
        coalesce(retained.retained_entities, 0) / cohort_periods.cohort_size as retention_rate,
        cohort_periods.cohort_date
        + ((cohort_periods.period_number + 1) * cohort_periods.period_days)::integer
        <= watermark.watermark_date as is_period_complete
    from cohort_periods
    cross join watermark
    left join retained
        on
            cohort_periods.cohort_grain = retained.cohort_grain
            and cohort_periods.cohort_date = retained.cohort_date
            and cohort_periods.platform = retained.platform
            and cohort_periods.channel = retained.channel
            and cohort_periods.period_number = retained.period_number
)

select * from final
