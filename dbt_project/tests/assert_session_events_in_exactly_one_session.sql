-- every non-bot track/page/screen event dated inside the run's window (the whole history
-- without vars) lies in exactly one session of its entity: none lost, none in two sessions
with

events as (
    select * from {{ ref('int_events__stitched') }}
    where is_session_event and {{ in_partition_range('event_date') }}
),

sessions as (
    select * from {{ ref('fct_sessions') }}
),

matches as (
    select
        events.message_id,
        count(sessions.session_id) as session_count
    from events
    left join sessions
        on
            events.user_key = sessions.user_key
            and events.event_at >= sessions.started_at
            and events.event_at <= sessions.ended_at
    group by events.message_id
)

select * from matches
where session_count != 1
