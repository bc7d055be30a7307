-- depends_on: {{ ref('int_identities__relinked') }}
-- depends_on: {{ ref('int_identities__mapped') }}
{{ config(
    materialized='incremental',
    incremental_strategy='replace_entities',
    replace_key='user_key',
    replace_aliases={'model': 'int_identities__mapped', 'entity': 'user_id', 'alias': 'identifier'},
    unique_key='session_id',
    replace_interval=['started_at', 'ended_at'],
) }}

{%- set inactivity_minutes = positive_int(var('sessions__inactivity_minutes'), 'var sessions__inactivity_minutes') -%}
{%- set max_length_hours = positive_int(var('sessions__max_length_hours'), 'var sessions__max_length_hours') -%}
{%- set engaged_seconds = positive_int(var('sessions__engaged_seconds'), 'var sessions__engaged_seconds') -%}
{%- set conversion_events = literal_list(var('sessions__conversion_events'), 'var sessions__conversion_events') -%}
{%- set is_partition_run = is_incremental() and has_partition_range() -%}

with recursive

-- not materialized: a partition run reads it four times, and DuckDB would otherwise copy every
-- wide event row (4.7 s at 10M events) instead of scanning the table with each filter
events as not materialized (
    select * from {{ ref('int_events__stitched') }}
    where is_session_event
),

{%- if is_partition_run %}

-- the ids whose person may have changed (int_identities__relinked)
relinked as (
    select identifier from {{ ref('int_identities__relinked') }}
),

-- what makes a span dirty: an event dated inside the window, any event of an id whose person
-- may have changed (its sessions may now belong to another person), and the stored sessions
-- such an id was in (the person they were under may have lost events)
dirty_points as (
    select
        user_key,
        event_at
    from events
    where
        {{ in_partition_range('event_date') }}
        or anonymous_id in (select relinked.identifier from relinked)
        or user_id in (select relinked.identifier from relinked)
    union all
    select
        stored.user_key,
        unnest([stored.started_at, stored.ended_at]) as event_at
    from {{ this }} as stored
    where
        stored.user_key in (select relinked.identifier from relinked)
        -- a semi join on the unnested ids: `list_has_any(anonymous_ids, (select list(...)))`
        -- was planned as a nested loop over every stored session (44 s of 47 at 10M events)
        or stored.session_id in (
            select stored_ids.session_id
            from (
                select
                    session_id,
                    unnest(anonymous_ids) as anonymous_id
                from {{ this }}
            ) as stored_ids
            where stored_ids.anonymous_id in (select relinked.identifier from relinked)
        )
),

dirty_entity_events as (
    select * from events
    where user_key in (select dirty_points.user_key from dirty_points)
),

-- activity chains (no gap over the timeout) of the dirty entities over their whole history:
-- a session never crosses a chain boundary, so whole chains are the unit of recomputation
chain_marks as (
    select
        user_key,
        event_at,
        message_id,
        coalesce(
            event_at - lag(event_at) over chain_order > interval {{ inactivity_minutes }} minute,
            true
        ) as is_chain_start
    from dirty_entity_events
    -- window names are global to the query in DuckDB 1.5: each cte names its own
    window chain_order as (partition by user_key order by event_at, message_id)
),

chain_numbered as (
    select
        *,
        sum(is_chain_start::int) over (
            partition by user_key order by event_at, message_id
            rows between unbounded preceding and current row
        ) as chain_number
    from chain_marks
),

chains as (
    select
        user_key,
        chain_number,
        min(event_at) as chain_started_at,
        max(event_at) as chain_ended_at
    from chain_numbered
    group by user_key, chain_number
),

dirty_chains as (
    select distinct
        chains.user_key,
        chains.chain_started_at,
        chains.chain_ended_at
    from chains
    inner join dirty_points
        on
            chains.user_key = dirty_points.user_key
            and dirty_points.event_at between chains.chain_started_at and chains.chain_ended_at
),

recompute_spans as (
    select
        user_key,
        min(chain_started_at) as recompute_from_at,
        max(chain_ended_at) as recompute_to_at
    from dirty_chains
    group by user_key
),

{%- endif %}

-- a partition run sessionizes whole chains only; otherwise the whole history
-- (the chain ctes above are left out of a full run: it would compute them for nothing)
scoped_events as (
    select events.*
    from events
    {%- if is_partition_run %}
    -- a join, not `exists`: recompute_spans has one row per user_key, and DuckDB plans the
    -- correlated `exists` as a distinct over every event (2.3 s at 10M events)
    inner join recompute_spans
        on
            events.user_key = recompute_spans.user_key
            and events.event_at >= recompute_spans.recompute_from_at
            and events.event_at <= recompute_spans.recompute_to_at
    {%- endif %}
),

-- one sort of the events by entity: the gap to the previous event and the event's rank in its
-- entity (a session's events are consecutive in that order, so ranks order them in the session)
inactivity_marks as (
    select
        *,
        coalesce(
            event_at - lag(event_at) over entity_order > interval {{ inactivity_minutes }} minute,
            true
        ) as is_visit_start,
        row_number() over entity_order as entity_rank
    from scoped_events
    window entity_order as (partition by user_key order by event_at, message_id)
),

visit_numbered as (
    select
        *,
        sum(is_visit_start::int) over (
            partition by user_key order by event_at, message_id
            rows between unbounded preceding and current row
        ) as visit_number
    from inactivity_marks
),

visits as (
    select
        user_key,
        visit_number,
        min(event_at) as visit_started_at,
        max(event_at) as visit_ended_at
    from visit_numbered
    group by user_key, visit_number
),

-- only visits longer than the maximum are cut into several sessions: the events of the others
-- keep their visit as their session and skip the asof join below
long_visits as (
    select * from visits
    where visit_ended_at - visit_started_at > interval {{ max_length_hours }} hour
),

long_visit_events as (
    select visit_numbered.*
    from visit_numbered
    inner join long_visits
        on
            visit_numbered.user_key = long_visits.user_key
            and visit_numbered.visit_number = long_visits.visit_number
),

-- a visit longer than the maximum is cut greedily: the next session starts at the first event
-- more than max_length_hours after the current session's first event
session_starts as (
    select
        user_key,
        visit_number,
        visit_started_at as session_started_at
    from long_visits
    union all
    select
        session_starts.user_key,
        session_starts.visit_number,
        min(long_visit_events.event_at) as session_started_at
    from session_starts
    inner join long_visit_events
        on
            session_starts.user_key = long_visit_events.user_key
            and session_starts.visit_number = long_visit_events.visit_number
            and long_visit_events.event_at
            > session_starts.session_started_at + interval {{ max_length_hours }} hour
    group by session_starts.user_key, session_starts.visit_number
),

-- a session: a visit, or a part of a long visit (its start; null for the other visits)
indexed_events as (
    select
        visit_numbered.*,
        null::timestamp as long_visit_session_started_at
    from visit_numbered
    where
        not exists (
            select 1 from long_visits
            where
                long_visits.user_key = visit_numbered.user_key
                and long_visits.visit_number = visit_numbered.visit_number
        )
    union all
    select
        long_visit_events.*,
        session_starts.session_started_at as long_visit_session_started_at
    from long_visit_events
    asof inner join session_starts
        on
            long_visit_events.user_key = session_starts.user_key
            and long_visit_events.visit_number = session_starts.visit_number
            and long_visit_events.event_at >= session_starts.session_started_at
),

sessions as (
    select
        user_key,
        min(event_at) as started_at,
        max(event_at) as ended_at,
        arg_min(message_id, entity_rank) as first_message_id,
        max(stitched_user_id) as user_id,
        coalesce(
            list_sort(list(distinct anonymous_id) filter (where anonymous_id is not null)),
            []
        ) as anonymous_ids,
        count(*) as event_count,
        count(*) filter (where event_type = 'page') as page_view_count,
        count(*) filter (where event_type = 'screen') as screen_view_count,
        count(*) filter (where event_type = 'track') as track_event_count,
        count(*) filter (where event_name in ({{ conversion_events }})) as conversion_event_count,
        min(event_at) filter (where event_name in ({{ conversion_events }})) as first_converted_at,
        arg_min(page_path, entity_rank) filter (where event_type = 'page') as landing_page_path,
        arg_min(page_url, entity_rank) filter (where event_type = 'page') as landing_page_url,
        arg_max(page_path, entity_rank) filter (where event_type = 'page') as exit_page_path,
        arg_min(screen_name, entity_rank) filter (
            where event_type = 'screen'
        ) as landing_screen_name,
        arg_max(screen_name, entity_rank) filter (where event_type = 'screen') as exit_screen_name,
        arg_min_null(referrer_url, entity_rank) as referrer_url,
        arg_min_null(referrer_host, entity_rank) as referrer_host,
        arg_min_null(utm_source, entity_rank) as utm_source,
        arg_min_null(utm_medium, entity_rank) as utm_medium,
        arg_min_null(utm_campaign, entity_rank) as utm_campaign,
        arg_min_null(utm_term, entity_rank) as utm_term,
        arg_min_null(utm_content, entity_rank) as utm_content,
        arg_min_null(traffic_channel, entity_rank) as first_traffic_channel,
        arg_min_null(platform, entity_rank) as platform,
        arg_min_null(device_type, entity_rank) as device_type,
        arg_min_null(os_name, entity_rank) as os_name
    from indexed_events
    group by user_key, visit_number, long_visit_session_started_at
),

final as (
    select
        md5('session:' || first_message_id) as session_id,
        user_key,
        user_id,
        user_id is not null as is_identified,
        anonymous_ids,
        started_at::date as session_date,
        started_at,
        ended_at,
        epoch(ended_at - started_at) as duration_seconds,
        event_count,
        page_view_count,
        screen_view_count,
        track_event_count,
        landing_page_path,
        landing_page_url,
        exit_page_path,
        landing_screen_name,
        exit_screen_name,
        referrer_url,
        referrer_host,
        utm_source,
        utm_medium,
        utm_campaign,
        utm_term,
        utm_content,
        -- an internal referrer on the first event means the visitor idled past the timeout
        case
            when first_traffic_channel = 'internal' then 'direct'
            else first_traffic_channel
        end as channel,
        platform,
        device_type,
        os_name,
        page_view_count + screen_view_count = 1 and track_event_count = 0 as is_bounce,
        (
            epoch(ended_at - started_at) >= {{ engaged_seconds }}
            or page_view_count + screen_view_count >= 2
            or conversion_event_count > 0
        ) as is_engaged,
        conversion_event_count,
        conversion_event_count > 0 as is_converted,
        first_converted_at,
        first_message_id
    from sessions
)

select * from final
