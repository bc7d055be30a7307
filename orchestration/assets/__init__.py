"""Asset definitions: ingestion (dlt) and transformation (dbt)."""
