-- one row per message_id over the whole history, typed and enriched.
-- bot traffic is kept here (flagged); downstream models drop it.
-- a table, not a view: every test on it and every model downstream would otherwise redo the
-- dedup and the json/url parsing. a run with min_date/max_date re-derives only the messages with
-- a delivery dated inside the window (all deliveries of those messages, so the dedup stays over
-- the whole history); without them the table is rebuilt from all of raw.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='message_id',
    full_refresh=none if has_partition_range() else true,
) }}
{%- set search_hosts = '(^|\\.)(google|bing|duckduckgo|yahoo|baidu|yandex|ecosia|qwant|startpage|ask)\\.' %}
{%- set social_hosts = '(^|\\.)(facebook|fb|instagram|twitter|linkedin|lnkd|reddit|pinterest|youtube|tiktok'
    ~ '|t|x|threads|mastodon)\\.' %}
{#- people erased with `trackflow forget` (raw.privacy_suppressions, written by it): their rows
    never reach the models, even if they come back into raw by a path that skips ingestion.
    the table exists from the first erasure on. -#}
{%- set suppressions = load_relation(source('raw', 'privacy_suppressions')) %}
with

-- the dedup key and order of every delivery: a narrow pass, so the wide json columns are read
-- once, for the winning delivery only
deliveries as (
    select
        rowid as raw_row,
        message_id,
        received_at,
        _kafka_topic,
        _kafka_partition,
        _kafka_offset
    from {{ source('raw', 'tracking_events') }}
    where
        {%- if suppressions is not none %}
        not exists (
            select 1 from {{ suppressions }} as suppressed
            where
                suppressed.id_sha256 = {{ erased_id_hash('anonymous_id') }}
                or suppressed.id_sha256 = {{ erased_id_hash('user_id') }}
        )
        {%- else %}
        true  -- noqa: LT02
        {%- endif %}
        -- a partition run: every delivery of a message that has one dated inside the window
        and {{ 'message_id in (' ~ messages_delivered_in_window() ~ ')' if is_incremental() else 'true' }}
),

-- the earliest received_at wins, ties broken by (topic, partition, offset)
winners as (
    select
        message_id,
        arg_min(
            raw_row, (received_at, _kafka_topic, _kafka_partition, _kafka_offset)
        ) as raw_row,
        count(*) as delivery_count
    from deliveries
    group by message_id
),

deduplicated as (
    select
        raw_events.*,
        winners.delivery_count
    from {{ source('raw', 'tracking_events') }} as raw_events
    inner join winners
        on raw_events.rowid = winners.raw_row
),

typed as (
    select
        message_id,
        lower(type) as event_type,
        event as event_name,
        name as view_name,
        anonymous_id,
        user_id,
        -- the id an alias call merges into user_id; read from the payload of alias calls only
        case
            when lower(type) = 'alias'
                then nullif(json_extract_string(payload, '$.previousId'), '')
        end as previous_id,
        -- all timestamps become naive utc so date() never depends on the session time zone
        timezone('UTC', timestamp::timestamptz) as device_timestamp,
        timezone('UTC', sent_at::timestamptz) as sent_at,
        timezone('UTC', received_at::timestamptz) as received_at,
        context::json as context,
        properties::json as properties,
        traits::json as traits,
        delivery_count,
        _kafka_topic as kafka_topic,
        _kafka_partition as kafka_partition,
        _kafka_offset as kafka_offset,
        _dlt_load_id as dlt_load_id
    from deduplicated
),

-- every context field in one json parse per row (`->>` would parse the object once per field)
context_extracted as (
    select
        *,
        json_extract_string(
            context,
            [
                '$.page.url',
                '$.page.path',
                '$.page.title',
                '$.page.referrer',
                '$.userAgent',
                '$.ip',
                '$.locale',
                '$.library.name',
                '$.library.version',
                '$.device.type',
                '$.os.name',
                '$.app.name',
                '$.campaign.source',
                '$.campaign.medium',
                '$.campaign.name',
                '$.campaign.term',
                '$.campaign.content',
                '$.consent.analytics'
            ]
        ) as context_values
    from typed
),

context_fields as (
    select
        * exclude (context_values),
        nullif(context_values[1], '') as page_url,
        nullif(context_values[2], '') as context_page_path,
        nullif(context_values[3], '') as page_title,
        nullif(context_values[4], '') as referrer_url,
        nullif(context_values[5], '') as user_agent,
        nullif(context_values[6], '') as ip,
        nullif(context_values[7], '') as locale,
        nullif(context_values[8], '') as library_name,
        nullif(context_values[9], '') as library_version,
        nullif(context_values[10], '') as context_device_type,
        nullif(context_values[11], '') as os_name,
        nullif(context_values[12], '') as app_name,
        nullif(context_values[13], '') as campaign_source,
        nullif(context_values[14], '') as campaign_medium,
        nullif(context_values[15], '') as campaign_name,
        nullif(context_values[16], '') as campaign_term,
        nullif(context_values[17], '') as campaign_content,
        context_values[18] as context_consent_analytics
    from context_extracted
),

urls_parsed as (
    select
        *,
        lower(
            nullif(regexp_extract(page_url, '^[A-Za-z][A-Za-z0-9+.-]*://([^/?#:]+)', 1), '')
        ) as page_host,
        nullif(
            regexp_extract(page_url, '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*([^?#]*)', 1), ''
        ) as url_path,
        nullif(regexp_extract(page_url, '\?([^#]*)', 1), '') as page_query,
        lower(
            nullif(regexp_extract(referrer_url, '^[A-Za-z][A-Za-z0-9+.-]*://([^/?#:]+)', 1), '')
        ) as referrer_host
    from context_fields
),

utm_parsed as (
    select
        *,
        coalesce(
            campaign_source,
            nullif(url_decode(regexp_extract(page_query, '(?:^|&)utm_source=([^&]*)', 1)), '')
        ) as utm_source,
        coalesce(
            campaign_medium,
            nullif(url_decode(regexp_extract(page_query, '(?:^|&)utm_medium=([^&]*)', 1)), '')
        ) as utm_medium,
        coalesce(
            campaign_name,
            nullif(url_decode(regexp_extract(page_query, '(?:^|&)utm_campaign=([^&]*)', 1)), '')
        ) as utm_campaign,
        coalesce(
            campaign_term,
            nullif(url_decode(regexp_extract(page_query, '(?:^|&)utm_term=([^&]*)', 1)), '')
        ) as utm_term,
        coalesce(
            campaign_content,
            nullif(url_decode(regexp_extract(page_query, '(?:^|&)utm_content=([^&]*)', 1)), '')
        ) as utm_content
    from urls_parsed
),

enriched as (
    select
        message_id,
        event_type,
        event_name,
        view_name,
        case when event_type = 'screen' then view_name end as screen_name,
        anonymous_id,
        user_id,
        previous_id,
        device_timestamp,
        sent_at,
        received_at,
        -- segment's skew correction: the device clock offset is (sent_at - timestamp) on the
        -- same clock, so the server-side time of the event is received_at minus that offset
        {{ event_at_sql('device_timestamp', 'sent_at', 'received_at') }} as event_at,
        case
            when sent_at is not null then epoch(received_at - sent_at)
        end as clock_skew_seconds,
        page_url,
        page_host,
        case
            when event_type = 'page' then coalesce(context_page_path, url_path, '/')
            else coalesce(context_page_path, url_path)
        end as page_path,
        page_query,
        page_title,
        referrer_url,
        referrer_host,
        utm_source,
        utm_medium,
        utm_campaign,
        utm_term,
        utm_content,
        case
            when utm_source is not null or utm_medium is not null or utm_campaign is not null
                then 'campaign'
            when referrer_host is null then 'direct'
            when
                page_host is not null
                and (
                    referrer_host = page_host
                    or referrer_host like '%.' || page_host
                    or page_host like '%.' || referrer_host
                )
                then 'internal'
            when regexp_matches(referrer_host, '{{ search_hosts }}') then 'search'
            when regexp_matches(referrer_host, '{{ social_hosts }}') then 'social'
            else 'referral'
        end as traffic_channel,
        user_agent,
        coalesce(
            regexp_matches(
                lower(user_agent), 'bot|crawler|spider|headless|curl|python-requests|slurp'
            ),
            false
        ) as is_bot,
        case
            when event_type = 'screen' or app_name is not null then 'mobile'
            when event_type = 'page' or page_url is not null or user_agent is not null then 'web'
            else 'server'
        end as platform,
        coalesce(
            lower(context_device_type),
            case
                when user_agent is null then null
                when regexp_matches(lower(user_agent), 'ipad|tablet') then 'tablet'
                when regexp_matches(lower(user_agent), 'mobi|iphone|android') then 'mobile'
                else 'desktop'
            end
        ) as device_type,
        os_name,
        -- context.consent.analytics: true / false when the event says so, else null
        try_cast(context_consent_analytics as boolean) as consent_analytics,
        ip,
        locale,
        library_name,
        library_version,
        context,
        properties,
        traits,
        event_type in ('track', 'page', 'screen') as is_session_event,
        delivery_count,
        kafka_topic,
        kafka_partition,
        kafka_offset,
        dlt_load_id
    from utm_parsed
),

final as (
    select
        *,
        event_at::date as event_date
    from enriched
)

select * from final
