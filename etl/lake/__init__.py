"""etl.lake."""
