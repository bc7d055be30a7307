-- The floor for benchmarks/transforms.py: the sessions and the `checkout` funnel computed straight
-- from raw.tracking_events by one hand-written DuckDB script, with the rules the dbt models document
-- (dbt_project/README.md "The rules"):
--   dedup on message_id (earliest received_at, then topic, partition, offset), skew-corrected
--   event_at, bots dropped, retroactive identity stitching (first pairing by event_at, message_id),
--   user_key, sessions per user_key over track/page/screen events (gap > 30 minutes starts a visit,
--   a visit is cut greedily at the first event > 24 hours after its session's start),
--   session_id = md5('session:' || first message_id), and the sequential, session-scoped checkout
--   funnel with a 60-minute window and its attempts chain.
-- Statements are separated by a line holding only `;`. Results: bench_floor.sessions and
-- bench_floor.checkout_attempts. Intermediates are temp tables (memory, not the file).

create schema if not exists bench_floor
;
create or replace temp table session_events as
with deduplicated as (
    select
        message_id,
        lower(type) as event_type,
        event as event_name,
        anonymous_id,
        user_id,
        case
            when sent_at is not null
                then timezone('UTC', received_at) - (timezone('UTC', sent_at) - timezone('UTC', timestamp))
            else timezone('UTC', timestamp)
        end as event_at,
        context
    from raw.tracking_events
    qualify row_number() over (
        partition by message_id order by received_at, _kafka_topic, _kafka_partition, _kafka_offset
    ) = 1
),

human as (
    select * exclude (context)
    from deduplicated
    where not coalesce(
        regexp_matches(
            lower(nullif(context ->> '$.userAgent', '')),
            'bot|crawler|spider|headless|curl|python-requests|slurp'
        ),
        false
    )
),

identities as (
    select
        anonymous_id,
        arg_min(user_id, (event_at, message_id)) as mapped_user_id
    from human
    where anonymous_id is not null and user_id is not null
    group by anonymous_id
),

stitched as (
    select
        human.message_id,
        human.event_type,
        human.event_name,
        human.event_at,
        coalesce(identities.mapped_user_id, human.user_id, human.anonymous_id) as user_key
    from human
    left join identities on human.anonymous_id = identities.anonymous_id
    where human.event_type in ('track', 'page', 'screen')
),

marked as (
    select
        *,
        coalesce(event_at - lag(event_at) over w > interval 30 minute, true) as is_visit_start
    from stitched
    window w as (partition by user_key order by event_at, message_id)
)

select
    *,
    sum(is_visit_start::int) over (
        partition by user_key order by event_at, message_id
        rows between unbounded preceding and current row
    ) as visit_number
from marked
;
-- visits longer than 24 hours (rare) are cut greedily; the other events keep split_start null
create or replace temp table long_visit_splits as
with recursive visits as (
    select user_key, visit_number, min(event_at) as visit_started_at
    from session_events
    group by user_key, visit_number
    having max(event_at) - min(event_at) > interval 24 hour
),

long_events as (
    select session_events.user_key, session_events.visit_number, session_events.event_at,
        session_events.message_id
    from session_events
    inner join visits
        on session_events.user_key = visits.user_key
        and session_events.visit_number = visits.visit_number
),

splits as (
    select user_key, visit_number, visit_started_at as split_start from visits
    union all
    select splits.user_key, splits.visit_number, min(long_events.event_at)
    from splits
    inner join long_events
        on splits.user_key = long_events.user_key
        and splits.visit_number = long_events.visit_number
        and long_events.event_at > splits.split_start + interval 24 hour
    group by splits.user_key, splits.visit_number
)

select long_events.message_id, splits.split_start
from long_events
asof inner join splits
    on long_events.user_key = splits.user_key
    and long_events.visit_number = splits.visit_number
    and long_events.event_at >= splits.split_start
;
create or replace temp table sessionized as
select session_events.*, long_visit_splits.split_start
from session_events
left join long_visit_splits on session_events.message_id = long_visit_splits.message_id
;
create or replace table bench_floor.sessions as
select
    md5('session:' || arg_min(message_id, (event_at, message_id))) as session_id,
    user_key,
    visit_number,
    split_start,
    min(event_at) as started_at,
    max(event_at) as ended_at,
    count(*) as event_count
from sessionized
group by user_key, visit_number, split_start
;
create or replace table bench_floor.checkout_attempts as
with recursive steps as (
    select
        sessions.session_id,
        sessionized.event_at,
        sessionized.message_id,
        case sessionized.event_name
            when 'Product Viewed' then 1
            when 'Product Added' then 2
            when 'Checkout Started' then 3
            else 4
        end as step
    from sessionized
    inner join bench_floor.sessions
        on sessionized.user_key = sessions.user_key
        and sessionized.visit_number = sessions.visit_number
        and sessionized.split_start is not distinct from sessions.split_start
    where sessionized.event_type = 'track'
        and sessionized.event_name in
        ('Product Viewed', 'Product Added', 'Checkout Started', 'Order Completed')
),

-- ordering only the funnel's events keeps the session's (event_at, message_id) order
numbered as (
    select *, row_number() over (partition by session_id order by event_at, message_id) as seq
    from steps
),

step_1 as (
    select session_id, seq as start_seq, event_at as step_1_at,
        event_at + interval 60 minute as window_ends_at
    from numbered where step = 1
),

step_2 as (
    select s.session_id, s.start_seq, any_value(s.window_ends_at) as window_ends_at,
        min(m.seq) as step_2_seq, min(m.event_at) as step_2_at
    from step_1 as s inner join numbered as m
        on s.session_id = m.session_id and m.step = 2 and m.seq > s.start_seq
        and m.event_at <= s.window_ends_at
    group by s.session_id, s.start_seq
),

step_3 as (
    select s.session_id, s.start_seq, any_value(s.window_ends_at) as window_ends_at,
        min(m.seq) as step_3_seq, min(m.event_at) as step_3_at
    from step_2 as s inner join numbered as m
        on s.session_id = m.session_id and m.step = 3 and m.seq > s.step_2_seq
        and m.event_at <= s.window_ends_at
    group by s.session_id, s.start_seq
),

step_4 as (
    select s.session_id, s.start_seq,
        min(m.seq) as step_4_seq, min(m.event_at) as step_4_at
    from step_3 as s inner join numbered as m
        on s.session_id = m.session_id and m.step = 4 and m.seq > s.step_3_seq
        and m.event_at <= s.window_ends_at
    group by s.session_id, s.start_seq
),

-- the last funnel event inside each window: an unconverted attempt lets the next one start after it
window_times as (
    select session_id, event_at, max(seq) as last_seq
    from numbered
    group by session_id, event_at
),

candidates as (
    select
        step_1.*,
        step_2.step_2_at,
        step_3.step_3_at,
        step_4.step_4_at,
        step_4.step_4_seq
    from step_1
    left join step_2 using (session_id, start_seq)
    left join step_3 using (session_id, start_seq)
    left join step_4 using (session_id, start_seq)
),

closed as (
    select
        candidates.*,
        coalesce(candidates.step_4_seq, window_times.last_seq) + 1 as next_min_seq,
        row_number() over (partition by candidates.session_id order by candidates.start_seq)
            as candidate_rank
    from candidates
    asof inner join window_times
        on candidates.session_id = window_times.session_id
        and candidates.window_ends_at >= window_times.event_at
),

linked as (
    select closed.*, next_candidate.start_seq as next_start_seq
    from closed
    asof left join step_1 as next_candidate
        on closed.session_id = next_candidate.session_id
        and closed.next_min_seq <= next_candidate.start_seq
),

chain as (
    select session_id, start_seq, next_start_seq, 1 as attempt_number
    from linked where candidate_rank = 1
    union all
    select linked.session_id, linked.start_seq, linked.next_start_seq, chain.attempt_number + 1
    from chain inner join linked
        on chain.session_id = linked.session_id and chain.next_start_seq = linked.start_seq
)

select
    linked.session_id,
    chain.attempt_number,
    linked.step_1_at,
    linked.step_2_at,
    linked.step_3_at,
    linked.step_4_at
from chain
inner join linked using (session_id, start_seq)
