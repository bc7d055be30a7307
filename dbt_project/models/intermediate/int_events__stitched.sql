-- depends_on: {{ ref('int_identities__relinked') }}
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

-- not materialized: read twice, and DuckDB would otherwise copy every wide event row first
events as not materialized (
    -- the raw context and traits json stay in staging: nothing downstream reads them
    select * exclude (context, traits) from {{ ref('stg_raw__tracking_events') }}
    where not is_bot
),

-- the stitching and the consent timeline read these few columns only: the wide rows are joined
-- back once, to the events the run recomputes (a one-day run at 10M events copied every wide
-- row twice through the ctes below: 14 of its 17 s)
event_keys as (
    select
        message_id,
        event_type,
        anonymous_id,
        user_id,
        previous_id,
        event_at,
        consent_analytics
    from events
),

identities as (
    select * from {{ ref('int_identities__mapped') }}
),

-- an event's own userId always wins (mapped to its person); an anonymous event goes to its
-- device's person, unless the device is shared
attributed as (
    select
        event_keys.*,
        coalesce(user_identities.user_id, event_keys.user_id, device_identities.user_id)
            as person_user_id,
        event_keys.user_id is null and coalesce(device_identities.is_shared_device, false)
            as is_on_shared_device
    from event_keys
    left join identities as user_identities
        on event_keys.user_id = user_identities.identifier
    left join identities as device_identities
        on event_keys.anonymous_id = device_identities.identifier
),

shared_devices as (
    select identifier as device_id from identities
    where is_shared_device
),

-- on a shared device, an anonymous event belongs to the person whose link (login, alias) on
-- that device came last before it, or to the first person linked there if none came before.
-- the links and the anonymous events of shared devices, in one time line per device
shared_device_timeline as (
    select
        anonymous_id as device_id,
        event_at,
        message_id,
        person_user_id,
        true as is_link
    from attributed
    where
        user_id is not null
        and anonymous_id in (select shared_devices.device_id from shared_devices)
    union all
    select
        previous_id as device_id,
        event_at,
        message_id,
        person_user_id,
        true as is_link
    from attributed
    where
        event_type = 'alias'
        and previous_id in (select shared_devices.device_id from shared_devices)
    union all
    select
        anonymous_id as device_id,
        event_at,
        message_id,
        null as person_user_id,
        false as is_link
    from attributed
    where is_on_shared_device
),

shared_device_attribution as (
    select
        message_id,
        coalesce(
            last_value(person_user_id ignore nulls) over device_order,
            first_value(person_user_id ignore nulls) over (
                partition by device_id order by event_at, message_id
                rows between unbounded preceding and unbounded following
            )
        ) as device_user_id
    from shared_device_timeline
    window
        device_order as (
            partition by device_id order by event_at, message_id
            rows between unbounded preceding and current row
        )
    qualify not is_link
),

stitched as (
    select
        attributed.message_id,
        attributed.anonymous_id,
        attributed.user_id,
        attributed.event_at,
        attributed.consent_analytics,
        coalesce(attributed.person_user_id, shared_device_attribution.device_user_id)
            as stitched_user_id,
        coalesce(
            attributed.person_user_id,
            shared_device_attribution.device_user_id,
            attributed.anonymous_id
        ) as user_key
    from attributed
    left join shared_device_attribution
        on
            attributed.is_on_shared_device
            and attributed.message_id = shared_device_attribution.message_id
),

{%- if is_partition_run %}

-- the messages staging derived again in this run (a delivery dated in the window)
rederived as (
    {{ messages_delivered_in_window() }}
),

-- the ids whose person may have changed: all their events move
relinked as (
    select identifier from {{ ref('int_identities__relinked') }}
),

touched_entities as (
    select user_key from stitched
    where message_id in (select rederived.message_id from rederived)
    union
    select user_key from stitched
    where
        anonymous_id in (select relinked.identifier from relinked)
        or user_id in (select relinked.identifier from relinked)
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
        or anonymous_id in (select relinked.identifier from relinked)
        or user_id in (select relinked.identifier from relinked)
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
        events.*,
        scoped.stitched_user_id,
        scoped.user_key,
        coalesce(consent_timeline.has_analytics_consent, true) as has_analytics_consent
    from scoped
    inner join events
        on scoped.message_id = events.message_id
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
