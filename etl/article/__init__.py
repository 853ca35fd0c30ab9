"""etl.article."""
