{#-
  the unkeyed hash of an erased id that `trackflow forget` stores in raw.privacy_suppressions
  (id_sha256): staging drops every event whose anonymous or user id hashes to one of them.
  python computes it as pipelines/privacy.py id_sha256; tests/dbt/test_shared_rules.py fails
  when the two drift.
-#}
{% macro erased_id_hash(column) -%}
    sha256(coalesce({{ column }}, ''))
{%- endmacro %}
