-- a table (small, rebuilt on every run): int_events__stitched, every mart and several tests read it
{{ config(materialized='table') }}

-- one row per anonymous_id that has ever been seen together with a user_id.
-- the first pairing (by event_at, then message_id) wins and applies retroactively.
with

events as (
    select * from {{ ref('stg_raw__tracking_events') }}
    where not is_bot
),

pairings as (
    select
        anonymous_id,
        user_id,
        event_at,
        message_id,
        event_type
    from events
    where anonymous_id is not null and user_id is not null
),

ranked as (
    select
        *,
        row_number() over (
            partition by anonymous_id order by event_at, message_id
        ) as pairing_rank,
        count(distinct user_id) over (partition by anonymous_id) as user_id_count
    from pairings
),

final as (
    select
        anonymous_id,
        user_id,
        event_at as stitched_at,
        event_at::date as stitched_date,
        message_id as stitched_by_message_id,
        event_type = 'identify' as is_stitched_by_identify,
        user_id_count > 1 as has_conflicting_user_ids
    from ranked
    where pairing_rank = 1
)

select * from final
