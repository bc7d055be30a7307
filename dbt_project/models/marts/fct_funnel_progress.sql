-- depends_on: {{ ref('int_identities__mapped') }}
-- the sql below is generated per funnel by jinja loops; sqlfluff cannot map the layout of
-- looped code back to the source, so indentation and line length are checked by review here
-- sqlfluff:exclude_rules:layout.indent,layout.long_lines,structure.using,structure.column_order,ambiguous.column_count
{{ config(
    materialized='incremental',
    incremental_strategy='replace_entities',
    replace_key='user_key',
    replace_aliases={'model': 'int_identities__mapped', 'entity': 'user_id', 'alias': 'identifier'},
    unique_key='funnel_attempt_id',
) }}

{%- set funnels = funnel_definitions() -%}
{%- set max_steps = funnel_max_steps(funnels) -%}
{%- set is_partition_run = is_incremental() and has_partition_range() %}

with recursive

-- not materialized: read twice, and DuckDB would otherwise copy the event rows first (1.7 s at
-- 10M events in a one-day run) instead of scanning the table with each filter
events as not materialized (
    select * from {{ ref('int_events__stitched') }}
    where is_session_event
),

sessions as (
    select * from {{ ref('fct_sessions') }}
),

-- open windows are judged against the latest event the warehouse has seen
watermark as (
    select max(event_at) as watermark_at from events
),

-- a partition run recomputes every attempt of the entities with an event dated in the window
-- and of the entities with attempts still open (a user-scope attempt can span many days)
touched_entities as (  -- noqa: ST03
    select user_key from {{ ref('int_events__stitched') }}
    where {{ in_partition_range('event_date') }}
    {%- if is_partition_run %}
    union
    select user_key from {{ this }}
    where is_still_open
    {%- endif %}
),

scoped_sessions as (
    select * from sessions
    {%- if is_partition_run %}
    where user_key in (select touched_entities.user_key from touched_entities)
    {%- endif %}
),

sessionized_events as (
    select
        events.message_id,
        events.user_key,
        events.event_at,
        events.event_type,
        events.event_name,
        events.page_path,
        events.screen_name,
        events.properties,
        scoped_sessions.session_id,
        scoped_sessions.platform,
        scoped_sessions.channel
    from scoped_sessions
    inner join events
        on
            scoped_sessions.user_key = events.user_key
            and events.event_at between scoped_sessions.started_at and scoped_sessions.ended_at
),

-- the order of the events in their entity, for every funnel at once
user_sequence as (
    select
        *,
        row_number() over (
            partition by user_key order by event_at, message_id
        ) as user_seq
    from sessionized_events
),

-- the sessions of an entity never overlap (fct_sessions' no_overlapping_intervals test), so a
-- session's events are consecutive in its entity's order: the order in the session is the
-- order in the entity less the events before the session's first. a grouped minimum instead of
-- a second sort of every event by session (3.4 of 11 CPU s of this model at 1M events)
session_offsets as (
    select
        session_id,
        min(user_seq) - 1 as seq_before_session
    from user_sequence
    group by session_id
),

sequenced_events as (
    select
        user_sequence.*,
        user_sequence.user_seq - session_offsets.seq_before_session as session_seq
    from user_sequence
    inner join session_offsets
        on user_sequence.session_id = session_offsets.session_id
),

{#- the funnels without hold_constant share their entities (the session or the entity) and
    their event order: their event times and entity sizes are computed once per scope -#}
{%- set shared_scopes = funnels | rejectattr('hold_constant') | map(attribute='scope') | unique | list %}
{%- for scope in shared_scopes %}
{%- set entity = 'session_id' if scope == 'session' else 'user_key' %}
{%- set seq = 'session_seq' if scope == 'session' else 'user_seq' %}
-- the last event at each moment of each {{ scope }}, and the size of each {{ scope }}, for the
-- funnels of {{ scope }} scope without hold_constant
{{ scope }}_scope__event_times as (
    select
        {{ entity }} as entity_id,
        event_at,
        max({{ seq }}) as last_seq_at_time
    from sequenced_events
    group by {{ entity }}, event_at
),

{{ scope }}_scope__entity_sizes as (
    select
        {{ entity }} as entity_id,
        max({{ seq }}) as max_seq
    from sequenced_events
    group by {{ entity }}
),

{% endfor %}
{% for f in funnels -%}
{%- set n = f.steps | length -%}
{%- set entity = 'session_id' if f.scope == 'session' else 'user_key' -%}
{%- set window = 'interval ' ~ f.window_minutes ~ ' minute' -%}
-- funnel {{ f.name }}: {{ f.order }}, {{ f.scope }} scope, {{ f.window_minutes }} minute window
{%- if f.hold_constant %}
-- hold_constant: each value of the held properties is an entity of its own (parallel attempts);
-- only the events that carry every held property take part
{{ f.name }}__events as (
    select
        * exclude (session_seq, user_seq),
        json_array(
            {{ entity }}
            {%- for key in f.hold_constant %}, json_extract_string(properties, '$.{{ key }}'){% endfor %}
        )::varchar as entity_id,
        json_object(
            {%- for key in f.hold_constant %}'{{ key }}', json_extract_string(properties, '$.{{ key }}'){% if not loop.last %}, {% endif %}{% endfor -%}
        )::varchar as held_values,
        {{ 'session_seq' if f.scope == 'session' else 'user_seq' }} as seq
    from sequenced_events
    where
        {%- for key in f.hold_constant %}
        json_extract_string(properties, '$.{{ key }}') is not null{% if not loop.last %} and{% endif %}
        {%- endfor %}
),
{%- else %}
-- not materialized: a renaming of sequenced_events, which DuckDB would otherwise copy per funnel
{{ f.name }}__events as not materialized (
    select
        * exclude (session_seq, user_seq),
        {{ entity }} as entity_id,
        {{ 'session_seq' if f.scope == 'session' else 'user_seq' }} as seq
    from sequenced_events
),
{%- endif %}

{{ f.name }}__matches as (
    {%- for step in f.steps %}
    select
        entity_id,
        seq,
        event_at,
        {{ loop.index }} as step_index
    from {{ f.name }}__events
    where {{ funnel_step_condition(step) }}
    {%- if step.first_time %}
        -- first_time: the user's first ever matching event, over all of its history
        and message_id in (
            select first_seen.message_id from sequenced_events as first_seen
            where {{ funnel_step_condition(step) }}
            qualify row_number() over (
                partition by first_seen.user_key order by first_seen.user_seq
            ) = 1
        )
    {%- endif %}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

{{ f.name }}__candidates as (
    select distinct
        entity_id,
        seq,
        event_at
    from {{ f.name }}__matches
    {%- if f.order != 'any' %}
    where step_index = 1
    {%- endif %}
),

{% if f.order == 'any' -%}
{{ f.name }}__reached as (
    select
        candidates.entity_id,
        candidates.seq as start_seq,
        candidates.event_at as started_at,
        candidates.event_at + {{ window }} as window_ends_at
        {%- for k in range(1, n + 1) %},
        min(matches.seq) filter (where matches.step_index = {{ k }}) as first_{{ k }}_seq,
        min(matches.event_at) filter (where matches.step_index = {{ k }}) as first_{{ k }}_at
        {%- endfor %}
    from {{ f.name }}__candidates as candidates
    inner join {{ f.name }}__matches as matches
        on
            candidates.entity_id = matches.entity_id
            and candidates.seq <= matches.seq
            and candidates.event_at + {{ window }} >= matches.event_at
    group by candidates.entity_id, candidates.seq, candidates.event_at
),

-- in any order, "step k" is the moment the k-th distinct step was first done
{{ f.name }}__attempt_candidates as (
    select
        entity_id,
        start_seq,
        started_at,
        window_ends_at,
        {%- for k in range(1, max_steps + 1) %}
        {%- if k <= n %}
        list_sort(
            [{% for i in range(1, n + 1) %}first_{{ i }}_at{% if not loop.last %}, {% endif %}{% endfor %}],
            'ASC',
            'NULLS LAST'
        )[{{ k }}] as step_{{ k }}_at,
        {% else %}
        null::timestamp as step_{{ k }}_at,
        {%- endif %}
        {%- endfor %}
        greatest(
            {%- for i in range(1, n + 1) %}first_{{ i }}_seq{% if not loop.last %}, {% endif %}{% endfor -%}
        ) as last_step_seq,
        (
            {%- for i in range(1, n + 1) %}first_{{ i }}_seq is not null{% if not loop.last %} and {% endif %}{% endfor -%}
        ) as is_converted
    from {{ f.name }}__reached
),
{% else %}
{{ f.name }}__step_1 as (
    select
        entity_id,
        seq as start_seq,
        event_at as started_at,
        event_at + {{ window }} as window_ends_at,
        seq as step_1_seq,
        event_at as step_1_at
    from {{ f.name }}__candidates
),
{%- set required = [] -%}
{%- for s in f.steps -%}{%- if not s.optional -%}{%- do required.append(loop.index) -%}{%- endif -%}{%- endfor -%}
{% for k in required[1:] %}
{%- set p = required[required.index(k) - 1] %}
{{ f.name }}__step_{{ k }} as (
    select
        previous_step.entity_id,
        previous_step.start_seq,
        any_value(previous_step.window_ends_at) as window_ends_at,
        min(matches.seq) as step_{{ k }}_seq,
        min(matches.event_at) as step_{{ k }}_at
    from {{ f.name }}__step_{{ p }} as previous_step
    inner join {{ f.name }}__matches as matches
        on
            previous_step.entity_id = matches.entity_id
            and matches.step_index = {{ k }}
            {%- if f.order == 'strict' %}
            and previous_step.step_{{ p }}_seq + 1 = matches.seq
            {%- else %}
            and previous_step.step_{{ p }}_seq < matches.seq
            {%- endif %}
            and previous_step.window_ends_at >= matches.event_at
    group by previous_step.entity_id, previous_step.start_seq
),
{% endfor %}
{%- for k in range(2, n) if f.steps[k - 1].optional %}
{%- set p = required | select('lt', k) | list | last %}
{%- set q = required | select('gt', k) | list | first %}
-- optional step {{ k }}: its first event after step {{ p }} and before step {{ q }} (before the
-- window ends when step {{ q }} is not reached)
{{ f.name }}__step_{{ k }} as (
    select
        previous_step.entity_id,
        previous_step.start_seq,
        min(matches.seq) as step_{{ k }}_seq,
        min(matches.event_at) as step_{{ k }}_at
    from {{ f.name }}__step_{{ p }} as previous_step
    left join {{ f.name }}__step_{{ q }} as next_step
        on
            previous_step.entity_id = next_step.entity_id
            and previous_step.start_seq = next_step.start_seq
    inner join {{ f.name }}__matches as matches
        on
            previous_step.entity_id = matches.entity_id
            and matches.step_index = {{ k }}
            and previous_step.step_{{ p }}_seq < matches.seq
            and (next_step.step_{{ q }}_seq is null or next_step.step_{{ q }}_seq > matches.seq)
            and previous_step.window_ends_at >= matches.event_at
    group by previous_step.entity_id, previous_step.start_seq
),
{% endfor %}
{{ f.name }}__attempt_candidates as (
    select
        step_1.entity_id,
        step_1.start_seq,
        step_1.started_at,
        step_1.window_ends_at,
        {%- for k in range(1, max_steps + 1) %}
        {%- if k <= n %}
        step_{{ k }}.step_{{ k }}_at,
        {% else %}
        null::timestamp as step_{{ k }}_at,
        {%- endif %}
        {%- endfor %}
        {%- if f.exclusions %}
        {%- for k in range(1, n + 1) %}
        step_{{ k }}.step_{{ k }}_seq,
        {%- endfor %}
        {%- endif %}
        coalesce(
            {%- for k in range(n, 0, -1) %}step_{{ k }}.step_{{ k }}_seq{% if not loop.last %}, {% endif %}{% endfor -%}
        ) as last_step_seq,
        step_{{ n }}.step_{{ n }}_seq is not null as is_converted
    from {{ f.name }}__step_1 as step_1
    {%- for k in range(2, n + 1) %}
    left join {{ f.name }}__step_{{ k }} as step_{{ k }}
        on
            step_1.entity_id = step_{{ k }}.entity_id
            and step_1.start_seq = step_{{ k }}.start_seq
    {%- endfor %}
),
{% endif %}

{%- if f.exclusions %}
{{ f.name }}__exclusion_events as (
    {%- for x in f.exclusions %}
    select
        entity_id,
        seq,
        {{ loop.index }} as exclusion_index
    from {{ f.name }}__events
    where {{ funnel_step_condition(x) }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

-- an attempt is excluded when an exclusion event comes after its step `after` and before its
-- step `before` (both reached)
{{ f.name }}__excluded as (
    select distinct
        attempt_candidates.entity_id,
        attempt_candidates.start_seq
    from {{ f.name }}__attempt_candidates as attempt_candidates
    inner join {{ f.name }}__exclusion_events as exclusion_events
        on
            attempt_candidates.entity_id = exclusion_events.entity_id
            and (
                {%- for x in f.exclusions %}
                (
                    exclusion_events.exclusion_index = {{ loop.index }}
                    and attempt_candidates.step_{{ x.after }}_seq < exclusion_events.seq
                    and attempt_candidates.step_{{ x.before }}_seq > exclusion_events.seq
                ){% if not loop.last %} or{% endif %}
                {%- endfor %}
            )
),

{% endif -%}
{%- if f.hold_constant %}
{{ f.name }}__event_times as (
    select
        entity_id,
        event_at,
        max(seq) as last_seq_at_time
    from {{ f.name }}__events
    group by entity_id, event_at
),

{{ f.name }}__entity_sizes as (
    select
        entity_id,
        max(seq) as max_seq
    from {{ f.name }}__events
    group by entity_id
),
{%- set event_times = f.name ~ '__event_times' %}
{%- set entity_sizes = f.name ~ '__entity_sizes' %}
{%- else %}
{%- set event_times = f.scope ~ '_scope__event_times' %}
{%- set entity_sizes = f.scope ~ '_scope__entity_sizes' %}
{%- endif %}

{%- if f.order != 'strict' %}
-- the event times of the entities with an attempt that did not convert: only those read them
-- below, and the asof join sorts all it is given (every event of the scope otherwise)
{{ f.name }}__unconverted_event_times as (
    select * from {{ event_times }}
    where entity_id in (
        select unconverted.entity_id from {{ f.name }}__attempt_candidates as unconverted
        where not unconverted.is_converted
    )
),

{% endif -%}
-- where the next attempt may begin: after the converting (or, in strict order, the last
-- matched) event; otherwise after the window has passed
{{ f.name }}__closed as (
    select
        attempt_candidates.*,
        {%- if f.order == 'strict' %}
        attempt_candidates.last_step_seq + 1 as next_start_min_seq
    from {{ f.name }}__attempt_candidates as attempt_candidates
        {%- else %}
        case
            when attempt_candidates.is_converted then attempt_candidates.last_step_seq + 1
            else event_times.last_seq_at_time + 1
        end as next_start_min_seq
    from {{ f.name }}__attempt_candidates as attempt_candidates
    asof left join {{ f.name }}__unconverted_event_times as event_times
        on
            attempt_candidates.entity_id = event_times.entity_id
            and attempt_candidates.window_ends_at >= event_times.event_at
        {%- endif %}
),

{{ f.name }}__linked as (
    select
        closed.*,
        candidates.seq as next_candidate_seq,
        row_number() over (
            partition by closed.entity_id order by closed.start_seq
        ) as candidate_rank
    from {{ f.name }}__closed as closed
    asof left join {{ f.name }}__candidates as candidates
        on
            closed.entity_id = candidates.entity_id
            and closed.next_start_min_seq <= candidates.seq
),

-- attempts: the entity's first candidate, then each attempt's next candidate
{{ f.name }}__chain as (
    select
        entity_id,
        start_seq,
        next_candidate_seq,
        1 as attempt_number
    from {{ f.name }}__linked
    where candidate_rank = 1
    union all
    select
        linked.entity_id,
        linked.start_seq,
        linked.next_candidate_seq,
        chain.attempt_number + 1 as attempt_number
    from {{ f.name }}__chain as chain
    inner join {{ f.name }}__linked as linked
        on
            chain.entity_id = linked.entity_id
            and chain.next_candidate_seq = linked.start_seq
),

-- the events an attempt can start at (those of its candidates): the join below looks the start
-- event up among these instead of among every event of the funnel
{{ f.name }}__start_events as (
    select * from {{ f.name }}__events
    where
        {%- for step in (f.steps if f.order == 'any' else f.steps[:1]) %}
        ({{ funnel_step_condition(step) }}){% if not loop.last %} or{% endif %}
        {%- endfor %}
),

{{ f.name }}__attempts as (
    select
        '{{ f.name }}' as funnel_name,
        '{{ f.scope }}' as funnel_scope,
        '{{ f.order }}' as funnel_order,
        {{ n }} as funnel_step_count,
        {{ f.window_minutes }} as window_minutes,
        {%- if f.hold_constant %}
        start_event.{{ entity }} as entity_id,
        start_event.held_values,
        {%- else %}
        chain.entity_id,
        null::varchar as held_values,
        {%- endif %}
        start_event.user_key,
        start_event.session_id,
        start_event.message_id as start_message_id,
        start_event.platform,
        start_event.channel,
        chain.attempt_number,
        linked.started_at,
        {%- for k in range(1, max_steps + 1) %}
        linked.step_{{ k }}_at,
        {%- endfor %}
        linked.window_ends_at,
        linked.is_converted,
        {%- if f.exclusions %}
        excluded.start_seq is not null as is_excluded,
        {%- else %}
        false as is_excluded,
        {%- endif %}
        {%- if f.order == 'strict' %}
        linked.last_step_seq < entity_sizes.max_seq as has_broken_sequence
        {% else %}
        false as has_broken_sequence
        {%- endif %}
    from {{ f.name }}__chain as chain
    inner join {{ f.name }}__linked as linked
        on
            chain.entity_id = linked.entity_id
            and chain.start_seq = linked.start_seq
    inner join {{ f.name }}__start_events as start_event
        on
            chain.entity_id = start_event.entity_id
            and chain.start_seq = start_event.seq
    inner join {{ entity_sizes }} as entity_sizes
        on chain.entity_id = entity_sizes.entity_id
    {%- if f.exclusions %}
    left join {{ f.name }}__excluded as excluded
        on
            chain.entity_id = excluded.entity_id
            and chain.start_seq = excluded.start_seq
    {%- endif %}
),

{% endfor -%}

all_attempts as (
    {%- for f in funnels %}
    select * from {{ f.name }}__attempts
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

final as (
    select
        md5('funnel:' || all_attempts.funnel_name || ':' || all_attempts.start_message_id)
            as funnel_attempt_id,
        all_attempts.funnel_name,
        all_attempts.funnel_scope,
        all_attempts.funnel_order,
        all_attempts.funnel_step_count,
        all_attempts.window_minutes,
        all_attempts.entity_id,
        all_attempts.user_key,
        all_attempts.session_id,
        all_attempts.attempt_number,
        all_attempts.started_at::date as attempt_date,
        all_attempts.started_at,
        {%- for k in range(1, max_steps + 1) %}
        all_attempts.step_{{ k }}_at,
        {%- endfor %}
        -- the last step reached (an optional step may be skipped on the way)
        greatest(
            {%- for k in range(1, max_steps + 1) %}
            case when all_attempts.step_{{ k }}_at is not null then {{ k }} end{% if not loop.last %},{% endif %}
            {%- endfor %}
        ) as furthest_step,
        list_extract(
            case all_attempts.funnel_name
                {%- for f in funnels %}
                when '{{ f.name }}' then [
                    {%- for label in funnel_position_names(f) %}'{{ label }}'{% if not loop.last %}, {% endif %}{% endfor -%}
                ]
                {%- endfor %}
            end,
            furthest_step
        ) as furthest_step_name,
        all_attempts.is_converted and not all_attempts.is_excluded as is_converted,
        case
            when all_attempts.is_converted and not all_attempts.is_excluded
                then
                    case all_attempts.funnel_step_count
                        {%- for k in range(1, max_steps + 1) %}
                        when {{ k }} then all_attempts.step_{{ k }}_at
                        {%- endfor %}
                    end
        end as converted_at,
        all_attempts.window_ends_at,
        (
            not all_attempts.is_converted
            and not all_attempts.is_excluded
            and not all_attempts.has_broken_sequence
            and all_attempts.window_ends_at > watermark.watermark_at
        ) as is_still_open,
        all_attempts.is_excluded,
        all_attempts.held_values,
        all_attempts.platform,
        all_attempts.channel,
        all_attempts.start_message_id
    from all_attempts
    cross join watermark
),

with_durations as (
    select
        *,
        epoch(converted_at - started_at) as seconds_to_convert,
        not is_converted and not is_still_open and not is_excluded as is_dropped_off
    from final
)

select * from with_durations
