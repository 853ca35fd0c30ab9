"""etl.report."""
