-- depends_on: {{ ref('int_identities__relinked') }}
{{ config(
    materialized='incremental',
    incremental_strategy='replace_entities',
    replace_key='user_key',
    replace_aliases={'model': 'int_identities__mapped', 'entity': 'user_id', 'alias': 'identifier'},
    unique_key='user_key',
) }}

{%- set is_partition_run = is_incremental() and has_partition_range() %}

with

sessions as (
    select * from {{ ref('fct_sessions') }}
),

identities as (
    select * from {{ ref('int_identities__mapped') }}
),

-- a partition run rebuilds the entities with any event (identify calls included) in the window,
-- and the persons holding an id whose person may have changed (int_identities__relinked)
touched_entities as (  -- noqa: ST03
    select distinct user_key from {{ ref('int_events__stitched') }}
    where
        {{ in_partition_range('event_date') }}
    {%- if is_partition_run %}
        or anonymous_id in (select identifier from {{ ref('int_identities__relinked') }})
        or user_id in (select identifier from {{ ref('int_identities__relinked') }})
        {%- endif %}
),

scoped_sessions as (
    select * from sessions
    {%- if is_partition_run %}
    where user_key in (select touched_entities.user_key from touched_entities)
    {%- endif %}
),

ranked_sessions as (
    select
        *,
        row_number() over (
            partition by user_key order by started_at, session_id
        ) as session_rank_first,
        row_number() over (
            partition by user_key order by started_at desc, session_id desc
        ) as session_rank_last
    from scoped_sessions
),

session_summary as (
    select
        user_key,
        max(user_id) as user_id,
        min(started_at) as first_seen_at,
        max(ended_at) as last_seen_at,
        count(*) as session_count,
        sum(event_count)::bigint as event_count,
        sum(page_view_count)::bigint as page_view_count,
        count(*) filter (where is_converted) as converted_session_count,
        min(first_converted_at) as first_converted_at,
        list_sort(flatten(list(anonymous_ids))) as session_anonymous_ids,
        any_value(channel) filter (where session_rank_first = 1) as first_touch_channel,
        any_value(utm_source) filter (where session_rank_first = 1) as first_touch_utm_source,
        any_value(utm_medium) filter (where session_rank_first = 1) as first_touch_utm_medium,
        any_value(utm_campaign) filter (
            where session_rank_first = 1
        ) as first_touch_utm_campaign,
        any_value(referrer_host) filter (
            where session_rank_first = 1
        ) as first_touch_referrer_host,
        any_value(landing_page_path) filter (
            where session_rank_first = 1
        ) as first_touch_landing_page_path,
        any_value(channel) filter (where session_rank_last = 1) as last_touch_channel,
        any_value(utm_source) filter (where session_rank_last = 1) as last_touch_utm_source,
        any_value(utm_medium) filter (where session_rank_last = 1) as last_touch_utm_medium,
        any_value(utm_campaign) filter (where session_rank_last = 1) as last_touch_utm_campaign,
        any_value(platform) filter (where session_rank_last = 1) as last_platform
    from ranked_sessions
    group by user_key
),

-- the devices that belong to the person as a whole (a shared device belongs to no one)
stitched_ids as (
    select
        user_id as user_key,
        list_sort(list(identifier) filter (where identifier_type = 'anonymous_id'))
            as stitched_anonymous_ids,
        min(stitched_at) as first_identified_at
    from identities
    where user_id is not null
    group by user_id
),

final as (
    select
        session_summary.user_key,
        session_summary.user_id,
        session_summary.user_id is not null as is_identified,
        stitched_ids.first_identified_at,
        list_sort(
            list_distinct(
                list_concat(
                    session_summary.session_anonymous_ids,
                    coalesce(stitched_ids.stitched_anonymous_ids, [])
                )
            )
        ) as anonymous_ids,
        session_summary.first_seen_at,
        session_summary.last_seen_at,
        session_summary.first_seen_at::date as first_seen_date,
        session_summary.session_count,
        session_summary.event_count,
        session_summary.page_view_count,
        session_summary.converted_session_count,
        session_summary.first_converted_at,
        session_summary.first_touch_channel,
        session_summary.first_touch_utm_source,
        session_summary.first_touch_utm_medium,
        session_summary.first_touch_utm_campaign,
        session_summary.first_touch_referrer_host,
        session_summary.first_touch_landing_page_path,
        session_summary.last_touch_channel,
        session_summary.last_touch_utm_source,
        session_summary.last_touch_utm_medium,
        session_summary.last_touch_utm_campaign,
        session_summary.last_platform
    from session_summary
    left join stitched_ids
        on session_summary.user_key = stitched_ids.user_key
)

select * from final
