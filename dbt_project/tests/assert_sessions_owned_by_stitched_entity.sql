-- a session's anonymous ids all stitch to the session's entity. a failure means an anonymous id
-- was re-attributed (a late event revealed an earlier login to another user) in a day that has
-- not been re-run: re-run the days of the listed sessions, or a full refresh.
with

sessions as (
    select * from {{ ref('fct_sessions') }}
),

identities as (
    select * from {{ ref('int_identities__mapped') }}
),

session_anonymous_ids as (
    select
        session_id,
        user_key,
        session_date,
        unnest(anonymous_ids) as anonymous_id
    from sessions
)

select
    session_anonymous_ids.*,
    identities.user_id as stitched_to
from session_anonymous_ids
inner join identities
    on session_anonymous_ids.anonymous_id = identities.identifier
where
    identities.user_id != session_anonymous_ids.user_key
    and {{ in_partition_range('session_anonymous_ids.session_date') }}
