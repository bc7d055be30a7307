-- a table: every mart reads it several times, and the dedup and json parsing underneath it
-- are the expensive part of a run; it is rebuilt in full on every run
{{ config(materialized='table') }}

-- every non-bot event, attributed to its stitched entity (user_key).
with

events as (
    -- the raw context and traits json stay in staging: nothing downstream reads them
    select * exclude (context, traits) from {{ ref('stg_raw__tracking_events') }}
    where not is_bot
),

identities as (
    select * from {{ ref('int_identities__mapped') }}
),

stitched as (
    select
        events.*,
        coalesce(identities.user_id, events.user_id) as stitched_user_id,
        coalesce(identities.user_id, events.user_id, events.anonymous_id) as user_key
    from events
    left join identities
        on events.anonymous_id = identities.anonymous_id
)

select * from stitched
