"""Tests of etl.fetch: the fetcher, politeness, retries, bodies."""
