{#-
  segment's skew correction: the device clock offset is (sent_at - timestamp) on the same clock,
  so the server-side time of the event is received_at minus that offset; without sent_at the
  device timestamp is taken as is. one definition for staging's event_at and for the filter that
  finds the raw deliveries dated inside a partition window (they must agree to the day).
  ingestion computes the same days in python (pipelines/events.py event_days, for the late-data
  sensor); tests/dbt/test_shared_rules.py fails when the two drift.
-#}
{% macro event_at_sql(device_timestamp, sent_at, received_at) -%}
    case
        when {{ sent_at }} is not null then {{ received_at }} - ({{ sent_at }} - {{ device_timestamp }})
        else {{ device_timestamp }}
    end
{%- endmacro %}
