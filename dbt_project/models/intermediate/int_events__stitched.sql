-- a table: every mart reads it several times, and the dedup and json parsing underneath it
-- are the expensive part of a run; it is rebuilt in full on every run
{{ config(materialized='table') }}

-- every non-bot event of a person who has not withdrawn analytics consent, attributed to its
-- stitched entity (user_key).
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
),

consent_tracked as (
    -- a consent choice holds from the event that carries it until the person changes it;
    -- no choice yet means consent (the collector's page decides whether to send at all)
    select
        *,
        coalesce(
            last_value(consent_analytics ignore nulls) over (
                partition by user_key
                order by event_at, message_id
                rows between unbounded preceding and current row
            ),
            true
        ) as has_analytics_consent
    from stitched
),

consented as (
    select * from consent_tracked
    where has_analytics_consent
)

select * from consented
