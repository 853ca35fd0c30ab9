"""etl.discover."""
