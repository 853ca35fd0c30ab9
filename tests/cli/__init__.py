"""Tests of etl.cli: the newsetl commands (extract, eval, ingest, query)."""
