-- depends_on: {{ source('raw', 'tracking_events') }}
-- a table: every mart reads it several times. a run with min_date/max_date recomputes only the
-- events that can have changed (see `scoped`); without them it is rebuilt in full.
{{ config(
    materialized='incremental',
    incremental_strategy='replace_rows',
    unique_key='message_id',
    replace_insert_where='has_analytics_consent',
    full_refresh=none if has_partition_range() else true,
) }}
{%- set is_partition_run = is_incremental() and has_partition_range() %}

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

{%- if is_partition_run %}

-- the messages staging derived again in this run (a delivery dated in the window)
rederived as (
    {{ messages_delivered_in_window() }}
),

-- anonymous ids first stitched in the window: all their events move to the user
restitched as (
    select anonymous_id from identities
    where {{ in_partition_range('stitched_date') }}
),

touched_entities as (
    select user_key from stitched
    where message_id in (select rederived.message_id from rederived)
    union
    select user_id as user_key from identities
    where {{ in_partition_range('stitched_date') }}
),

-- of those, the entities that ever made a consent choice: their timeline may have changed, so
-- all their events are recomputed (an entity without a choice has consent on every event)
consent_entities as (
    select distinct user_key from stitched
    where
        consent_analytics is not null
        and user_key in (select touched_entities.user_key from touched_entities)
),
{%- endif %}

scoped as (
    select * from stitched
    {%- if is_partition_run %}
    where
        message_id in (select rederived.message_id from rederived)
        or anonymous_id in (select restitched.anonymous_id from restitched)
        or user_key in (select consent_entities.user_key from consent_entities)
    {%- endif %}
),

-- a consent choice holds from the event that carries it until the person changes it; no choice
-- yet means consent (the collector's page decides whether to send at all). only the entities
-- that ever made a choice need the window, and only narrow columns go through its sort
consent_choosers as (
    select distinct user_key from scoped
    where consent_analytics is not null
),

consent_timeline as (
    select
        message_id,
        coalesce(
            last_value(consent_analytics ignore nulls) over (
                partition by user_key
                order by event_at, message_id
                rows between unbounded preceding and current row
            ),
            true
        ) as has_analytics_consent
    from scoped
    where user_key in (select consent_choosers.user_key from consent_choosers)
),

consent_tracked as (
    select
        scoped.*,
        coalesce(consent_timeline.has_analytics_consent, true) as has_analytics_consent
    from scoped
    left join consent_timeline
        on scoped.message_id = consent_timeline.message_id
),

-- a partition run keeps the events without consent too: replace_rows deletes their stored rows
-- (consent may have been withdrawn since) and does not insert them
consented as (
    select * from consent_tracked
    where {{ 'true' if is_partition_run else 'has_analytics_consent' }}
)

select * from consented
