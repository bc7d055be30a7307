-- a table (small, rebuilt on every run): int_events__stitched, every mart and several tests read it
{{ config(materialized='table') }}
{%- set max_user_ids = positive_int(var('identities__max_user_ids'), 'var identities__max_user_ids') %}

-- the identity graph: identifiers (anonymous ids, user ids) are nodes; an event carrying both an
-- anonymousId and a userId, and an alias call (previousId -> userId), are links. see
-- dbt_project/README.md "Identity" for the rules and a worked example.
with

events as (
    select
        message_id,
        event_type,
        anonymous_id,
        user_id,
        previous_id,
        event_at
    from {{ ref('stg_raw__tracking_events') }}
    where not is_bot
),

-- every link event: the id it links (linked_id) to the user id it carries
link_events as (
    select
        anonymous_id as linked_id,
        user_id,
        event_at,
        message_id,
        false as is_alias
    from events
    where anonymous_id is not null and user_id is not null and anonymous_id != user_id
    union all
    select
        previous_id as linked_id,
        user_id,
        event_at,
        message_id,
        true as is_alias
    from events
    where event_type = 'alias' and previous_id is not null and user_id is not null and previous_id != user_id
),

-- one row per distinct link: the work below never sees the (many) logged-in events again
links as (
    select
        linked_id,
        user_id,
        bool_or(is_alias) as is_alias,
        min(event_at) as first_linked_at,
        arg_min(message_id, (event_at, message_id)) as first_message_id
    from link_events
    group by linked_id, user_id
),

-- an id is a user id when some event carries it as userId; every other linked id is a device
user_ids as (
    select distinct user_id from events
    where user_id is not null
),

-- only an alias merges user ids: the client says the two ids are one person
-- read inside connected_components(), which sqlfluff cannot see into
alias_edges as (  -- noqa: ST03
    select
        linked_id as from_id,
        user_id as to_id
    from links
    where is_alias
),

alias_components as (
    {{ connected_components('alias_edges') }}  -- noqa: PRS
),

alias_component_sizes as (
    select
        alias_components.node,
        alias_components.component_id,
        count(user_ids.user_id) over (
            partition by alias_components.component_id
        ) as component_user_id_count
    from alias_components
    left join user_ids
        on alias_components.node = user_ids.user_id
),

-- a component with more user ids than the limit is flagged and not merged: each of its ids stays
-- its own group (a client aliasing everyone to one id must not make one person of everyone)
alias_groups as (
    select
        node,
        component_id,
        component_user_id_count,
        component_user_id_count > {{ max_user_ids }} as is_in_oversized_component,
        case
            when component_user_id_count > {{ max_user_ids }} then node else component_id
        end as group_id
    from alias_component_sizes
),

-- the person's key is the group's user id seen first (as an event's userId or an alias's
-- previousId), ties broken by message_id
member_appearances as (
    select
        events.user_id as node,
        events.event_at,
        events.message_id
    from events
    inner join alias_groups
        on events.user_id = alias_groups.node
    union all
    select
        events.previous_id as node,
        events.event_at,
        events.message_id
    from events
    inner join alias_groups
        on events.previous_id = alias_groups.node
    where events.event_type = 'alias'
),

group_keys as (
    select
        alias_groups.group_id,
        arg_min(
            alias_groups.node, (member_appearances.event_at, member_appearances.message_id)
        ) as user_key
    from alias_groups
    inner join member_appearances
        on alias_groups.node = member_appearances.node
    inner join user_ids
        on alias_groups.node = user_ids.user_id
    group by alias_groups.group_id
),

-- the person behind each user id: its group's key, or the user id itself outside any alias
user_persons as (
    select
        user_ids.user_id,
        coalesce(group_keys.user_key, user_ids.user_id) as person_key,
        coalesce(alias_groups.component_id, user_ids.user_id) as component_id
    from user_ids
    left join alias_groups
        on user_ids.user_id = alias_groups.node
    left join group_keys
        on alias_groups.group_id = group_keys.group_id
),

-- each linked id with the persons its links reach
linked_persons as (
    select
        links.linked_id,
        count(distinct user_persons.person_key) as person_count,
        min(user_persons.person_key) as person_key,
        min(user_persons.component_id) as component_id
    from links
    inner join user_persons
        on links.user_id = user_persons.user_id
    group by links.linked_id
),

-- when each identifier was first linked, from either end of a link
identifier_links as (
    select
        linked_id as identifier,
        first_linked_at,
        first_message_id
    from links
    union all
    select
        user_id as identifier,
        first_linked_at,
        first_message_id
    from links
),

identifiers as (
    select
        identifier,
        min(first_linked_at) as stitched_at,
        arg_min(first_message_id, (first_linked_at, first_message_id)) as stitched_by_message_id
    from identifier_links
    group by identifier
),

final as (
    select
        identifiers.identifier,
        case
            when user_persons.user_id is not null then 'user_id' else 'anonymous_id'
        end as identifier_type,
        -- a user id is always its own person's; a device that links to several persons is
        -- shared and belongs to none as a whole (its events are attributed one by one)
        case
            when user_persons.user_id is not null then user_persons.person_key
            when linked_persons.person_count = 1 then linked_persons.person_key
        end as user_id,
        coalesce(
            user_persons.component_id,
            alias_groups.component_id,
            linked_persons.component_id
        ) as component_id,
        coalesce(alias_groups.component_user_id_count, 1) as component_user_id_count,
        coalesce(alias_groups.is_in_oversized_component, false) as is_in_oversized_component,
        coalesce(
            user_persons.user_id is null and linked_persons.person_count > 1, false
        ) as is_shared_device,
        identifiers.stitched_at,
        identifiers.stitched_at::date as stitched_date,
        identifiers.stitched_by_message_id
    from identifiers
    left join user_persons
        on identifiers.identifier = user_persons.user_id
    left join linked_persons
        on identifiers.identifier = linked_persons.linked_id
    left join alias_groups
        on identifiers.identifier = alias_groups.node
)

select * from final
