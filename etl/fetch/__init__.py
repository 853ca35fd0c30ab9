"""etl.fetch."""
