-- a table, rebuilt on every run: the partition runs of int_events__stitched, fct_sessions and
-- dim_users read it to find the events whose person may have changed
{{ config(materialized='table') }}

-- the identifiers whose person may have changed in this run: every id of the alias components,
-- persons and shared devices that a link dated inside the partition window touches (an event
-- carrying both ids, an alias call). a late alias merging two histories, a late login on a
-- shared device, a component growing past the limit all show up with every id they move.
-- without a window, every linked id.
with

identities as (
    select * from {{ ref('int_identities__mapped') }}
),

window_links as (
    select
        anonymous_id,
        user_id,
        previous_id
    from {{ ref('stg_raw__tracking_events') }}
    where
        user_id is not null
        and (anonymous_id is not null or previous_id is not null)
        and {{ in_partition_range('event_date') }}
),

linked_ids as (
    select anonymous_id as identifier from window_links
    union
    select user_id from window_links
    union
    select previous_id from window_links
),

touched as (
    select
        identifier,
        user_id,
        component_id
    from identities
    where identifier in (select linked_ids.identifier from linked_ids)
),

final as (
    select identifier from identities
    where
        identifier in (select touched.identifier from touched)
        or component_id in (select touched.component_id from touched)
        or user_id in (select touched.user_id from touched)
)

select * from final
