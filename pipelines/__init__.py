"""trackflow pipelines: everything that moves events. Never imports dagster."""
